/**
 * The one interface through which rtctl touches a host. Everything above this layer builds commands as
 * data; only implementations of `Executor` run them (SSH for real hosts, a fake for unit tests).
 */

/** Result of one remote command. */
export interface ExecResult {
  /** Exit code of the remote command (null when killed by a signal). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Bytes written to the command's stdin (then closed). Use this, never argv, for secret material. */
  stdin?: string | Buffer;
  /** Run through `sudo -n` when the host's `become` is on. Default true. */
  become?: boolean;
  /** Command timeout in ms; on expiry the channel is closed and an `ExecTimeoutError` thrown. */
  timeoutMs?: number;
}

/** How to reach one host; built from platform.yaml's host entry (after defaults are applied). */
export interface ConnectionSpec {
  /** Host name from platform.yaml, used in every message. */
  name: string;
  address: string;
  port: number;
  user: string;
  /** Use `sudo -n` for privileged commands (the user is not root). */
  become: boolean;
  /** Path to a private key; when absent, the ssh-agent at $SSH_AUTH_SOCK is used. */
  keyFile?: string;
  /** OpenSSH known_hosts file used for strict host-key checking. */
  knownHostsFile: string;
  /** Optional jump host (bastion), reached first; same fields. */
  jump?: Omit<ConnectionSpec, 'jump' | 'become' | 'knownHostsFile' | 'name'> & { name?: string };
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

export interface Executor {
  /** The host name this executor talks to. */
  readonly host: string;
  /** Open the connection (one per host per run). Idempotent. */
  connect(): Promise<void>;
  /** Run a POSIX sh script (`sh -s` reading the script from stdin, optionally through sudo). */
  runScript(script: string, opts?: Omit<ExecOptions, 'stdin'>): Promise<ExecResult>;
  /** Run argv (each element shell-quoted remotely). */
  run(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Upload a local file over SFTP to a path the login user can write (a staging path), with mode. */
  putFile(localPath: string, remotePath: string, mode?: number): Promise<void>;
  /** Download a remote file the login user can read. */
  getFile(remotePath: string): Promise<Buffer>;
  close(): Promise<void>;
}
