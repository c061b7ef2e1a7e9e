/**
 * rtctl's error hierarchy. Only bin/rtctl (src/cli/main.ts) catches errors: it prints `error: message`
 * and shows a stack trace only with --verbose. Anything that is not an RtctlError is a bug.
 */
export class RtctlError extends Error {
  /** Process exit code when this error ends the run. */
  exitCode = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** platform.yaml (or a saved plan, or a flag) is wrong; nothing has touched any host. */
export class ConfigError extends RtctlError {}

/** One platform.yaml problem with its position. */
export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  /** Path in the document, e.g. `hosts/1/address`. */
  path: string;
  message: string;
  /** The offending source line, shown under the message. */
  source?: string;
}

/** Validation found problems: all of them are reported together. */
export class ValidationError extends ConfigError {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    super(`${diagnostics.length} problem${diagnostics.length === 1 ? '' : 's'} in ${diagnostics[0]?.file ?? 'platform file'}`);
    this.diagnostics = diagnostics;
  }
}

/** A host could not be reached or refused us (host key, auth, timeout). */
export class ConnectError extends RtctlError {}

/** Gathering facts failed on a host (the probe script broke or printed something unexpected). */
export class FactError extends RtctlError {}

/** An apply step failed on a host. */
export class ApplyError extends RtctlError {}

/** Another apply holds the lock on a host. */
export class LockError extends RtctlError {}

/** A saved plan no longer matches the hosts. */
export class StalePlanError extends RtctlError {}

/** Ends the process with a code and no message (e.g. --detailed-exitcode 2). */
export class ExitError extends RtctlError {
  constructor(code: number) {
    super(`exit ${code}`);
    this.exitCode = code;
  }
}

/** A bug in rtctl itself. */
export class InternalError extends RtctlError {}
