#!/usr/bin/env node
// The `pinwave` executable (package.json "bin"); all logic is in cli.ts so tests run it in-process.
import { run } from './cli.ts';

// A reader that stops early (`pinwave rollout list | head -1`) closes the pipe: the command ends
// there, quietly, with the exit code it had so far (0 unless something failed already), as the
// output it still had to write is wanted by nobody. Any other write error is a real one.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  throw err;
});

process.exitCode = await run(process.argv.slice(2));
