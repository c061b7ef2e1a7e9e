/** POSIX sh quoting. Every remote command rtctl builds goes through `sh`/`shArgv`. */
export function sh(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shArgv(argv: readonly string[]): string {
  return argv.map(sh).join(' ');
}
