/** What `rtctl lab` needs on this machine, and how to get it (scripts/lab-prereqs.sh installs all of it). */
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';

interface Tool {
  command: string;
  pkg: string;
}

const TOOLS: Tool[] = [
  { command: 'systemd-nspawn', pkg: 'systemd-container' },
  { command: 'debootstrap', pkg: 'debootstrap' },
  { command: 'tinyproxy', pkg: 'tinyproxy' },
  { command: 'ip', pkg: 'iproute2' },
  { command: 'ssh', pkg: 'openssh-client' },
  { command: 'ssh-keygen', pkg: 'openssh-client' },
  { command: 'mount', pkg: 'mount' },
];

/** sbin directories are searched too: root's PATH in a non-login shell often lacks them. */
function onPath(command: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return dirs.some((d) => {
    try {
      accessSync(path.join(d, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function overlaySupported(): boolean {
  try {
    return /\boverlay\b/.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

/** Human messages, one per missing prerequisite; empty when the machine is ready. */
export async function checkPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) {
    missing.push('rtctl lab must run as root (it creates network namespaces, bridges and mounts): run it with sudo');
  }
  for (const tool of TOOLS) {
    if (!onPath(tool.command)) {
      missing.push(`${tool.command} not found: install the Debian package ${tool.pkg} (apt-get install -y ${tool.pkg}, or run scripts/lab-prereqs.sh)`);
    }
  }
  if (!overlaySupported()) {
    missing.push('the kernel does not offer the overlay filesystem: load it with `modprobe overlay`');
  }
  return missing;
}
