// Imported first by index.ts, before mocha: the web workbench forwards the extension host's
// console output without applying format strings, and mocha's reporters capture console.log
// when they load and log '%s' templates, so format every line here.
import { format } from 'node:util';

const log = console.log;
console.log = (...args: unknown[]) => log(format(...args));
