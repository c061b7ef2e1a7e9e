import { RtctlError } from '../errors.js';

/** `rtctl lab` could not build, start, inspect or remove a lab (missing tool, busy subnet, host never booted). */
export class LabError extends RtctlError {}
