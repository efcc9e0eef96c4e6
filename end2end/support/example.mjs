// The example relying party (examples/relying-party/index.html), served on its own origin as a
// tenant's site would serve it: the browser suites sign users up and in through it.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLE = readFileSync(join(here, '..', '..', 'examples', 'relying-party', 'index.html'));

/** Starts the site on a free port of 127.0.0.1; answers `{ site, port }`. */
export async function serveExample() {
  const site = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(EXAMPLE);
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  return { site, port: site.address().port };
}
