#!/usr/bin/env node
// The `mechanist` CLI: the built runtime (dist/cli.js), made by `npm ci` (prepare) or `npm run build`.
require('../dist/cli.js');
