/** Human plan output: grouped by host, `+` create, `~` change (with diffs), `-` destroy, `↻` restart. */
import chalk from 'chalk';
import type { Plan } from './plan.js';
import { summarize, type Summary } from './plan.js';

const SIGN = { create: '+', update: '~', delete: '-', restart: '↻', reload: '↻' } as const;
const COLOR = { create: chalk.green, update: chalk.yellow, delete: chalk.red, restart: chalk.cyan, reload: chalk.cyan } as const;

export function renderPlan(plan: Plan): string {
  const out: string[] = [];
  for (const h of plan.hosts) {
    if (h.changes.length === 0) continue;
    out.push(chalk.bold(`${h.host} (${h.address})`));
    for (const c of h.changes) {
      const color = COLOR[c.action];
      const what = c.action === 'restart' || c.action === 'reload' ? `${c.action} (${c.reason})` : c.details.join('; ');
      out.push(`  ${color(`${SIGN[c.action]} ${c.id}`)}  ${chalk.dim(what)}`);
      if (c.diff) {
        for (const line of c.diff.split('\n')) {
          if (line === '') continue;
          const col = line.startsWith('+') ? chalk.green : line.startsWith('-') ? chalk.red : line.startsWith('@@') ? chalk.cyan : chalk.dim;
          out.push(`      ${col(line)}`);
        }
      }
    }
    out.push('');
  }
  out.push(summaryLine(summarize(plan)));
  return out.join('\n');
}

export function summaryLine(s: Summary): string {
  if (s.create + s.update + s.delete + s.restart === 0) return `No changes. ${s.hosts} host${s.hosts === 1 ? ' is' : 's are'} in sync.`;
  return `Plan: ${s.create} to create, ${s.update} to change, ${s.delete} to destroy, ${s.restart} to restart, on ${s.hostsChanged} of ${s.hosts} hosts.`;
}
