#!/usr/bin/env node
// PouchDB's side of Duban's catch-up floor (docs/performance.md): a township
// catches up 10,000 signed events at least 2x faster than PouchDB replicates
// 10,000 plain documents.
//
// An HTTP PouchDB server (express-pouchdb on express, on 127.0.0.1, a free
// port) holds a database of N plain documents about the size of Duban's events
// (an id, a type, a Chinese title and description, timestamps: a few hundred
// bytes of JSON each). A fresh on-disk local PouchDB (leveldb, Node's default
// adapter) then replicates all of them from the server; only the replication
// is timed, not the fill nor the server's start. The last line is
//   pouchdb docs=N seconds=S rate=R/s
// Temporary directories are removed on the way out.
//
// Run: node bench/pouchdb/replicate.js [--docs 10000] [--batch-size 100]
// (npm ci in bench/pouchdb first; bench/pouchdb_side_by_side.py does it.)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const express = require('express');
const expressPouchDB = require('express-pouchdb');
const PouchDB = require('pouchdb');

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} takes a positive integer`);
  }
  return value;
}

const BOARDS = ['daily', 'key_task', 'reform', 'engineering'];
const CLASSES = ['general', 'general', 'major'];

// One plain document shaped like an item.assigned event of bench/catchup.py.
function doc(i, now) {
  const id = String(i).padStart(6, '0');
  return {
    _id: `140105001-${id}`,
    type: 'item.assigned',
    origin: '14',
    assignee: '140105001',
    seq: i + 1,
    title: `农村人居环境整治第${i}项`,
    description: '按照省委常委会部署，于规定时限内研究部署并反馈办理情况。'.repeat(2),
    board: BOARDS[i % BOARDS.length],
    item_class: CLASSES[i % CLASSES.length],
    deadlines: { deploy: now + 86400000, feedback: now + 7 * 86400000, resolve: now + 30 * 86400000 },
    created_at: now + i,
    updated_at: now + i,
  };
}

async function fill(db, n) {
  const now = Date.now();
  let bytes = 0;
  for (let start = 0; start < n; start += 1000) {
    const docs = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      const d = doc(i, now);
      bytes += Buffer.byteLength(JSON.stringify(d));
      docs.push(d);
    }
    const results = await db.bulkDocs(docs);
    const failed = results.filter((r) => r.error);
    if (failed.length) throw new Error(`fill failed: ${JSON.stringify(failed[0])}`);
  }
  return bytes / n;
}

async function main() {
  const n = option('--docs', 10000);
  const batchSize = option('--batch-size', 100); // PouchDB's default
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'duban-pouchdb-'));
  let server = null;
  const open = [];
  try {
    fs.mkdirSync(path.join(root, 'server'));
    const ServerDB = PouchDB.defaults({ prefix: path.join(root, 'server') + path.sep });
    const app = express();
    app.use('/', expressPouchDB(ServerDB, {
      mode: 'minimumForPouchDB',
      inMemoryConfig: true,
      configPath: path.join(root, 'config.json'),
      logPath: path.join(root, 'log.txt'),
    }));
    const source = new ServerDB('events');
    open.push(source);
    const docBytes = await fill(source, n);

    server = await new Promise((resolve, reject) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
    const url = `http://127.0.0.1:${server.address().port}/events`;
    const remote = new PouchDB(url);
    open.push(remote);
    const remoteInfo = await remote.info(); // the server answers before the clock starts
    if (remoteInfo.doc_count !== n) {
      throw new Error(`server holds ${remoteInfo.doc_count} of ${n} documents`);
    }
    const local = new PouchDB(path.join(root, 'local'));
    open.push(local);
    await local.info(); // the local database exists before the clock starts

    const t0 = process.hrtime.bigint();
    const result = await local.replicate.from(remote, { batch_size: batchSize });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

    const got = (await local.info()).doc_count;
    if (result.status !== 'complete' || result.docs_written !== n || got !== n) {
      throw new Error(`replication ${result.status}: wrote ${result.docs_written}, ` +
                      `local holds ${got} of ${n} documents`);
    }
    console.log(`replicated ${n} documents of ${docBytes.toFixed(0)} bytes of JSON on ` +
                `average from ${url} in batches of ${batchSize} (leveldb, on disk)`);
    console.log(`pouchdb docs=${n} seconds=${seconds.toFixed(3)} rate=${(n / seconds).toFixed(0)}/s`);
  } finally {
    if (server) await new Promise((resolve) => server.close(resolve));
    for (const db of open.reverse()) {
      try { await db.close(); } catch (e) { /* already closed */ }
    }
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => { console.error(err && err.stack ? err.stack : err); process.exit(1); },
);
