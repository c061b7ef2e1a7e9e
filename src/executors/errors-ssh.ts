/**
 * Errors of the SSH layer. All are `ConnectError`s (and so `RtctlError`s): the message is one line that names
 * the host (`h1 (198.18.1.11:22): …`) and the cause, ready to print as is. None ever carries stdin or file content.
 */
import { ConnectError } from '../errors.js';

export { ConnectError };

/** known_hosts holds a different key for this host: refused always, whatever --accept-new-host-keys says. */
export class HostKeyChangedError extends ConnectError {}

/** The host's key is marked `@revoked` in known_hosts. */
export class HostKeyRevokedError extends ConnectError {}

/** known_hosts has no key for this host and --accept-new-host-keys was not given. */
export class HostKeyUnknownError extends ConnectError {}

/** A command ran longer than its timeout; its channel was closed. */
export class ExecTimeoutError extends ConnectError {}
