// Starts the built `latchkey` binary on a free port against a fresh database, and stops it.
//
// LATCHKEY_BIN        the binary (default ../target/debug/latchkey, cargo-leptos' output)
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

const here = dirname(fileURLToPath(import.meta.url));
const workspace = resolve(here, '..', '..');

export const BIN = process.env.LATCHKEY_BIN ?? join(workspace, 'target', 'debug', 'latchkey');
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

/**
 * Starts `latchkey serve`; resolves once it has announced its address.
 * Returns `{ baseUrl, logs, stop() }`; `stop()` sends SIGTERM and waits for a clean exit.
 */
export async function startServer(backend = 'sqlite') {
  if (!existsSync(BIN)) {
    throw new Error(`no latchkey binary at ${BIN}: build it with \`cargo leptos build\``);
  }
  if (!existsSync(join(SITE_ROOT, 'pkg', 'latchkey.js'))) {
    throw new Error(`no built site at ${SITE_ROOT}: build it with \`cargo leptos build\``);
  }
  const db = freshDatabase(backend);
  const child = spawn(BIN, ['serve'], {
    env: {
      ...process.env,
      LATCHKEY_DATABASE_URL: db.url,
      LATCHKEY_BIND: '127.0.0.1:0',
      LATCHKEY_SITE_ROOT: SITE_ROOT,
      LATCHKEY_LOG_FORMAT: 'text',
      RUST_LOG: 'info',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
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
  return {
    baseUrl: `http://${addr}`,
    logs,
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
