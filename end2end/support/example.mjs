// The example relying party (examples/relying-party: index.html and its backend.mjs), served on
// its own origin as a tenant's site would serve it: the browser suites sign users up and in
// through it. Its backend validates tokens only once a test sets `settings.apiKey` (most tests
// validate the tokens themselves, and a token validates once).

import { createServer } from 'node:http';
import { exampleHandler } from '../../examples/relying-party/backend.mjs';

/** Starts the site on a free port of 127.0.0.1; answers `{ site, port, settings }`. */
export async function serveExample() {
  const settings = { latchkeyUrl: '', apiKey: undefined };
  const site = createServer(exampleHandler(() => settings));
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  return { site, port: site.address().port, settings };
}
