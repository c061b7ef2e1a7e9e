/**
 * The rtctl command line. Each command module is imported only when that command runs, so `--version` and
 * `--help` answer without loading ssh2, listr2 or the planner. This is the one place errors are caught.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface GlobalOptions {
  verbose?: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];

function common(cmd: Command): Command {
  return cmd
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--target <host|label|type:key>', 'limit to these hosts or resources (repeatable, comma-separated)', collect, [])
    .option('--exclude <host|label|type:key>', 'leave out these hosts or resources (repeatable, comma-separated)', collect, [])
    .option('--parallel <n>', 'hosts worked on at once', (v) => Number.parseInt(v, 10), 20)
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts (a changed key is always refused)', false);
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('rtctl')
    .description('Declarative platform for plain Linux hosts: plan and apply over SSH.')
    .version(VERSION, '-V, --version')
    .option('-v, --verbose', 'show stack traces and debug lines')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('validate')
    .description('check platform.yaml; contacts no host')
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--json', 'machine-readable diagnostics')
    .action(async (opts) => (await import('./validate.js')).validateCommand(opts));

  common(program.command('plan'))
    .description('gather facts from every host and show what apply would change')
    .option('--out <file>', 'save the plan for `rtctl apply FILE`')
    .option('--json', 'print the plan as JSON (format documented in docs/plan-format.md)')
    .option('--detailed-exitcode', 'exit 0 = no changes, 2 = changes, 1 = error')
    .action(async (opts) => (await import('./plan.js')).planCommand(opts));

  common(program.command('apply'))
    .description('apply the platform (or exactly a saved plan) to the hosts')
    .argument('[planfile]', 'a plan saved with `rtctl plan --out`')
    .option('--auto-approve', 'do not ask for confirmation (CI)')
    .option('--json', 'print the result as JSON')
    .action(async (planfile, opts) => (await import('./apply.js')).applyCommand(planfile, opts));

  program
    .command('status')
    .description('the Consul cluster: members, leader, failing checks (exit 2 when anything is unhealthy)')
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--json', 'machine-readable')
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
    .action(async (opts) => (await import('./status.js')).statusCommand({ parallel: 1, ...opts }));

  for (const [name, what] of [['rollback', 'roll SERVICE back to its previous release, batch by batch, behind the same health gates'], ['restart', 'rolling restart of SERVICE with no change, behind the same health gates']] as const) {
    program
      .command(name)
      .description(what)
      .argument('<service>', 'a service from the `services` section')
      .option('-f, --file <path>', 'platform file', 'platform.yaml')
      .option('--parallel <n>', 'hosts worked on at once', (v) => Number.parseInt(v, 10), 20)
      .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
      .option('--auto-approve', 'do not ask for confirmation (CI)')
      .option('--json', 'print the result as JSON')
      .action(async (service, opts) => (await import('./service.js'))[name === 'rollback' ? 'rollbackCommand' : 'restartCommand'](service, opts));
  }

  const db = program.command('db').description('the PostgreSQL cluster (the `database` section)');
  db.command('status')
    .description('roles (read from the hosts), timelines, replication state and lag in bytes and seconds')
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--json', 'machine-readable')
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
    .action(async (opts) => (await import('./db.js')).dbStatusCommand(opts));
  db.command('switchover')
    .description('planned role change, no data loss: stop the primary cleanly, promote HOST once it has replayed everything, re-point the others')
    .requiredOption('--to <host>', 'the replica to promote')
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--json', 'machine-readable')
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
    .action(async (opts) => (await import('./db.js')).dbSwitchoverCommand(opts.to, opts));
  db.command('failover')
    .description('the primary is lost: fence it, promote HOST, re-point the other replicas and create their slots')
    .requiredOption('--to <host>', 'the replica to promote')
    .option('--force', 'promote HOST even when it is far behind the best replica (loses those writes)')
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--json', 'machine-readable')
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
    .action(async (opts) => (await import('./db.js')).dbFailoverCommand(opts.to, opts));
  db.command('rejoin')
    .description('an old (fenced) primary becomes a replica of the current primary, with pg_rewind (or --reclone)')
    .argument('<host>', 'the host to rejoin')
    .option('--reclone', 'a fresh base backup from the primary instead of pg_rewind (its data is replaced)', false)
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--json', 'machine-readable')
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
    .action(async (host, opts) => (await import('./db.js')).dbRejoinCommand(host, opts));
  program
    .command('drill')
    .description('scripted disaster-recovery drills')
    .command('db-failover')
    .description('write continuously, kill the primary, fail over; report RTO and RPO (exit 2 when over a threshold)')
    .requiredOption('--rto-max <seconds>', 'maximum RTO in seconds', Number.parseFloat)
    .addOption(new Option('--fault <kind>', 'postmaster: kill -9 the postmaster; host: power the primary\'s host off at once').choices(['postmaster', 'host']).default('postmaster'))
    .requiredOption('--rpo-max <rows>', 'maximum acknowledged rows lost', (v) => Number.parseInt(v, 10))
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--json', 'machine-readable')
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
    .action(async (opts) => (await import('./drill.js')).drillDbFailoverCommand(opts));

  program
    .command('unlock')
    .description('remove the apply locks a dead rtctl left: on the hosts named, and in Consul with --cluster')
    .argument('[hosts...]', 'host names')
    .option('-f, --file <path>', 'platform file', 'platform.yaml')
    .option('--cluster <run>', 'also remove the platform-wide lock in Consul, if this run holds it (the run id in the lock message)')
    .option('--accept-new-host-keys', 'add unknown host keys to known_hosts', false)
    .action(async (hosts, opts) => (await import('./unlock.js')).unlockCommand(hosts, opts));

  const lab = program.command('lab').description('real test hosts on this machine (systemd-nspawn; needs root)');
  lab
    .command('up')
    .description('create (or recreate) a lab')
    .addOption(new Option('--hosts <n>', 'number of hosts').default(4).argParser((v) => Number.parseInt(v, 10)))
    .option('--name <name>', 'lab name', 'default')
    .action(async (opts) => (await import('./lab.js')).labUpCommand(opts));
  lab
    .command('down')
    .description('remove a lab and everything it created')
    .option('--name <name>', 'lab name', 'default')
    .action(async (opts) => (await import('./lab.js')).labDownCommand(opts));
  lab
    .command('status')
    .description('list the lab hosts and their state')
    .option('--name <name>', 'lab name', 'default')
    .action(async (opts) => (await import('./lab.js')).labStatusCommand(opts));
  lab
    .command('ssh')
    .description('open a shell (or run a command) on a lab host')
    .argument('<host>', 'host name, e.g. h1')
    .argument('[command...]', 'command to run')
    .option('--name <name>', 'lab name', 'default')
    .action(async (host, command, opts) => (await import('./lab.js')).labSshCommand(host, command, opts));

  const verbose = argv.includes('-v') || argv.includes('--verbose');
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = await report(err, verbose);
  }
}

async function report(err: unknown, verbose: boolean): Promise<number> {
  const e = err as { code?: string; exitCode?: number };
  // commander's own exits (help, version, usage errors) already printed their message.
  if (typeof e.code === 'string' && e.code.startsWith('commander.')) return e.exitCode ?? 1;
  const { RtctlError, ExitError, ValidationError } = await import('../errors.js');
  if (err instanceof ExitError) return err.exitCode;
  if (err instanceof ValidationError) {
    const { formatDiagnostics } = await import('../config/load.js');
    process.stderr.write(`${formatDiagnostics(err.diagnostics)}\n${err.message}\n`);
    if (verbose) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  if (err instanceof RtctlError) {
    process.stderr.write(`error: ${err.message}\n`);
    if (verbose) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  process.stderr.write(`internal error: ${(err as Error)?.message ?? String(err)}\nThis is a bug in rtctl; please report it${verbose ? '' : ' (run with --verbose for the stack trace)'}.\n`);
  if (verbose) process.stderr.write(`${(err as Error)?.stack}\n`);
  return 1;
}
