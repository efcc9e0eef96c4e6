// Starts the built `latchkey` binary on a free port against a fresh database, and stops it.
//
// LATCHKEY_BIN        the binary (default ../target/release/latchkey, what scripts/run.sh serves)
// LATCHKEY_SITE_ROOT  the built site (default ../target/site)
// LATCHKEY_TEST_POSTGRES_URL  admin URL of a PostgreSQL server where a database may be created
//                    (default postgres://postgres@127.0.0.1:5432/postgres)

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createServer } from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
const workspace = resolve(here, '..', '..');

export const BIN = process.env.LATCHKEY_BIN ?? join(workspace, 'target', 'release', 'latchkey');
export const SITE_ROOT = process.env.LATCHKEY_SITE_ROOT ?? join(workspace, 'target', 'site');
const PG_ADMIN = process.env.LATCHKEY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function psql(sql) {
  execFileSync('psql', [PG_ADMIN, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: 'pipe' });
}

/** Whether a PostgreSQL server answers; outside CI its absence skips (loudly), in CI it fails. */
export function postgresAvailable() {
  try {
    psql('SELECT 1');
    return true;
  } catch (err) {
    if (process.env.CI) {
      throw new Error(`PostgreSQL is required when CI is set: ${err.message}`);
    }
    console.warn(`\n*** SKIPPED: PostgreSQL end-to-end tests — no server at ${PG_ADMIN} ***\n`);
    return false;
  }
}

/** A fresh database of the given backend: `{ url, drop() }`. */
function freshDatabase(backend) {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-e2e-'));
    return {
      url: `sqlite://${join(dir, 'latchkey.db')}?mode=rwc`,
      drop: () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `latchkey_e2e_${randomUUID().replaceAll('-', '')}`;
  psql(`CREATE DATABASE "${name}"`);
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/**
 * Starts `latchkey serve`; resolves once it has announced its address. `env` adds or overrides
 * configuration variables (e.g. a short step-up window).
 * Returns `{ baseUrl, logs, cli(args), setupUrl(), stop() }`; `stop()` sends SIGTERM and waits
 * for a clean exit. The portal's public URL is `http://localhost:<port>`, the origin the browser
 * uses, so that WebAuthn's origin and RP ID checks hold.
 */
export async function startServer(backend = 'sqlite', { env: extraEnv = {} } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`no latchkey binary at ${BIN}: build it with \`cargo leptos build\``);
  }
  if (!existsSync(join(SITE_ROOT, 'pkg', 'latchkey.js'))) {
    throw new Error(`no built site at ${SITE_ROOT}: build it with \`cargo leptos build\``);
  }
  const db = freshDatabase(backend);
  const port = await freePort();
  const publicUrl = `http://localhost:${port}`;
  const env = {
    ...process.env,
    LATCHKEY_DATABASE_URL: db.url,
    LATCHKEY_BIND: `127.0.0.1:${port}`,
    LATCHKEY_PUBLIC_URL: publicUrl,
    LATCHKEY_SITE_ROOT: SITE_ROOT,
    LATCHKEY_LOG_FORMAT: 'text',
    RUST_LOG: 'info',
    ...extraEnv,
  };
  const child = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = [];
  const exited = new Promise((resolveExit) => child.on('exit', (code, signal) => resolveExit({ code, signal })));
  const lines = createInterface({ input: child.stderr });
  const addr = await new Promise((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${logs.join('\n')}`)), 30_000);
    lines.on('line', (line) => {
      logs.push(line);
      const match = line.includes('latchkey is listening') && line.match(/addr=(\S+)/);
      if (match) {
        clearTimeout(timer);
        resolveAddr(match[1]);
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${logs.join('\n')}`));
    });
  });
  void addr;
  return {
    baseUrl: publicUrl,
    logs,
    /** Runs a `latchkey` command against the same database; answers its stdout. */
    cli(args) {
      return execFileSync(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    },
    /** The setup link the server logged (waits for the line). */
    async setupUrl() {
      for (let i = 0; i < 100; i++) {
        const line = logs.find((l) => l.includes('/setup?token='));
        const match = line && line.match(/(http\S+\/setup\?token=[A-Za-z0-9_-]+)/);
        if (match) return match[1];
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no setup link logged:\n${logs.join('\n')}`);
    },
    async stop() {
      child.kill('SIGTERM');
      const { code } = await exited;
      db.drop();
      if (code !== 0) {
        throw new Error(`server exited with ${code}:\n${logs.join('\n')}`);
      }
    },
  };
}
