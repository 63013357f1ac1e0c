/** The CLI's command table. */
import { inspectCommand } from './inspect';
import { traceCommand } from './trace';

export interface CliCommand {
  usage: string;
  summary: string;
  run(argv: string[]): Promise<void>;
}

export const COMMANDS: Record<string, CliCommand> = {
  inspect: inspectCommand,
  trace: traceCommand,
};
