// Bundles the SDK into one ES module (with its types beside it) in ../public/sdk/, which the
// portal build copies into the served site: GET /sdk/latchkey.js.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'public', 'sdk');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'latchkey.js')],
  outfile: join(out, 'latchkey.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  sourcemap: false,
  legalComments: 'inline',
  logLevel: 'warning',
});
copyFileSync(join(here, 'src', 'latchkey.d.ts'), join(out, 'latchkey.d.ts'));
