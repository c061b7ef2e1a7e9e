/** Apply progress: listr2 in a terminal, plain timestamped lines otherwise (CI logs). */
import { Listr, type ListrTaskWrapper } from 'listr2';
import chalk from 'chalk';
import type { HostOutcome, Reporter } from '../apply/apply.js';
import type { Plan } from '../plan/plan.js';
import type { Redactor } from '../secrets.js';

export interface ClosableReporter extends Reporter {
  close(): Promise<void>;
}

const SIGN = { create: '+', update: '~', delete: '-', restart: '↻', reload: '↻' } as const;

export function createReporter(plan: Plan, redactor: Redactor, quiet: boolean): ClosableReporter {
  if (quiet) return { step() {}, changeDone() {}, failed() {}, hostDone() {}, close: async () => {} };
  return process.stdout.isTTY ? listrReporter(plan, redactor) : plainReporter(redactor);
}

function plainReporter(redactor: Redactor): ClosableReporter {
  const line = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${redactor.redact(s)}\n`);
  return {
    step: (host, c, s) => line(`${host} ${SIGN[c.action]} ${c.id}: ${s.desc}`),
    changeDone: () => {},
    failed: (host, c, s, msg) => line(`${host} FAILED ${c.id}: ${s.desc}: ${msg}`),
    hostDone: (host, o) => line(`${host} ${outcomeText(o)}`),
    close: async () => {},
  };
}

function outcomeText(o: HostOutcome): string {
  if (o.failure) return `failed after ${o.done.length} change(s); ${o.notDone.length} not done`;
  if (o.notDone.length) return `stopped: ${o.done.length} done, ${o.notDone.length} not done`;
  return `done: ${o.done.length} change(s)`;
}

function listrReporter(plan: Plan, redactor: Redactor): ClosableReporter {
  type Handle = { task?: ListrTaskWrapper<unknown, never, never>; resolve: () => void; reject: (e: Error) => void; promise: Promise<void> };
  const handles = new Map<string, Handle>();
  for (const h of plan.hosts.filter((x) => x.changes.length)) {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    handles.set(h.host, { resolve, reject, promise });
  }
  const list = new Listr(
    [...handles.entries()].map(([host, h]) => ({
      title: `${host}: ${plan.hosts.find((x) => x.host === host)!.changes.length} change(s)`,
      task: (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
        h.task = task;
        return h.promise;
      },
    })),
    { concurrent: true, exitOnError: false, rendererOptions: { collapseErrors: false } } as never,
  );
  const running = list.run().catch(() => undefined);
  return {
    step: (host, c, s) => {
      const t = handles.get(host)?.task;
      if (t) t.output = redactor.redact(`${SIGN[c.action]} ${c.id}: ${s.desc}`);
    },
    changeDone: () => {},
    failed: () => {},
    hostDone: (host, o) => {
      const h = handles.get(host);
      if (!h) return;
      if (h.task) h.task.title = `${host}: ${outcomeText(o)}`;
      if (o.failure) h.reject(new Error(redactor.redact(`${o.failure.change.id}: ${o.failure.step}: ${o.failure.message}`)));
      else h.resolve();
    },
    close: async () => {
      for (const h of handles.values()) h.resolve();
      await running;
      process.stdout.write(chalk.reset(''));
    },
  };
}
