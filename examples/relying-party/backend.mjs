// "Your backend" for the example relying party: serves index.html and validates the tokens the
// page hands it, with the tenant's API key, showing what Latchkey answers (the user, the
// passkey, the device and the risk signals). Node.js 20, no dependencies.
//
//   LATCHKEY_URL=http://localhost:3000 LATCHKEY_API_KEY=lk_sk_… node examples/relying-party/backend.mjs
//
// then open http://localhost:8080/?tenant=TENANT_ID. PORT changes the port.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const PAGE = readFileSync(join(here, 'index.html'), 'utf8');
const BACKEND_OFF = '<meta name="example-backend" content="off">';
const BACKEND_ON = '<meta name="example-backend" content="on">';

/**
 * The example's HTTP handler. `settings()` answers `{ latchkeyUrl, apiKey }` at each request
 * (the browser suite sets them after the server has started).
 */
export function exampleHandler(settings) {
  return async (req, res) => {
    if (req.method === 'POST' && req.url === '/backend/validate') {
      const { latchkeyUrl, apiKey } = settings();
      if (!apiKey) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'Set LATCHKEY_API_KEY to validate here.' }));
        return;
      }
      let body = '';
      for await (const chunk of req) {
        body += chunk;
        if (body.length > 4096) break;
      }
      let token;
      try {
        token = JSON.parse(body).token;
      } catch {
        token = undefined;
      }
      // The one call a backend must make: only `valid: true` proves the ceremony.
      const answer = await fetch(`${latchkeyUrl}/api/v1/tokens/validate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ token }),
      }).catch(() => null);
      res.writeHead(answer?.status ?? 502, { 'content-type': 'application/json' });
      res.end(answer ? await answer.text() : JSON.stringify({ error: 'Latchkey could not be reached.' }));
      return;
    }
    // The page asks this backend to validate only when it can (an API key is set).
    const { apiKey } = settings();
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(apiKey ? PAGE.replace(BACKEND_OFF, BACKEND_ON) : PAGE);
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const settings = {
    latchkeyUrl: (process.env.LATCHKEY_URL ?? 'http://localhost:3000').replace(/\/+$/, ''),
    apiKey: process.env.LATCHKEY_API_KEY,
  };
  const port = Number(process.env.PORT ?? 8080);
  createServer(exampleHandler(() => settings)).listen(port, '127.0.0.1', () => {
    console.log(`Example relying party on http://localhost:${port}/ (validating with ${settings.latchkeyUrl})`);
  });
}
