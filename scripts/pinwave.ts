#!/usr/bin/env node
// The `pinwave` executable (package.json "bin"); all logic is in cli.ts so tests run it in-process.
import { run } from './cli.ts';

process.exitCode = await run(process.argv.slice(2));
