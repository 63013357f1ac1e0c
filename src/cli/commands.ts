/** The CLI's command table. */
import { attentionCommand } from './attention';
import { contributionsCommand } from './contributions';
import { decomposeCommand } from './decompose';
import { editCommand } from './edit';
import { inspectCommand } from './inspect';
import { knockoutCommand } from './knockout';
import { lensCommand } from './lens';
import { localizeCommand } from './localize';
import { traceCommand } from './trace';

export interface CliCommand {
  usage: string;
  summary: string;
  run(argv: string[]): Promise<void>;
}

export const COMMANDS: Record<string, CliCommand> = {
  inspect: inspectCommand,
  trace: traceCommand,
  attention: attentionCommand,
  knockout: knockoutCommand,
  contributions: contributionsCommand,
  lens: lensCommand,
  decompose: decomposeCommand,
  localize: localizeCommand,
  edit: editCommand,
};
