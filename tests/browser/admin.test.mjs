// The operator view (GET /admin) in a real browser: Debian's chromium,
// driven by playwright-core, against the real strand binary started with
// an admin token, a small queue limit and a rate limit.
//
// Clients are raw WebSocket connections opened from here (node 20 has no
// WebSocket client): one that never reads ("sloth", cut as a slow consumer
// when POST /broadcast floods its room), one that floods ("speedy",
// rate-limited), and a few that hold connections and talk. The page must
// show them by name within seconds, its charts must move with them, it
// must say 401 without the token, and it must not poll while hidden.
//
// Run: node --test tests/browser/   (tests/browser.rs does this under cargo)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const BIN = process.env.STRAND_BIN || path.join(root, 'target', 'debug', 'strand');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(root, 'tests', 'artifacts');
const WAIT = 20_000;
const TOKEN = 'op-' + crypto.randomBytes(6).toString('hex');
const BROWSER_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let tmp, strand, base, browser, page;
const sockets = [];

function startStrand(dir, extra) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [
      'serve', '--bind', '127.0.0.1:0', '--log-level', 'info', '--data-dir', dir, ...extra,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('no "listening on":\n' + log)); }, WAIT);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /listening on (\S+)/.exec(log);
      if (m && !child.addr) { clearTimeout(timer); child.addr = m[1]; resolve(child); }
    });
  });
}

function stopStrand(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const hard = setTimeout(() => child.kill('SIGKILL'), WAIT);
    child.on('exit', () => { clearTimeout(hard); resolve(); });
    child.kill('SIGTERM');
  });
}

// ---- raw WebSocket clients ---------------------------------------------------

/** A masked text frame. */
function frame(text) {
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const head = payload.length < 126
    ? Buffer.from([0x81, 0x80 | payload.length])
    : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, masked]);
}

/** Connects to `path` and resolves once the 101 is read. */
function wsConnect(p) {
  const [host, port] = [strand.addr.slice(0, strand.addr.lastIndexOf(':')), Number(strand.addr.split(':').pop())];
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    sockets.push(s);
    let got = '';
    s.on('error', () => {});
    s.once('connect', () => s.write(
      `GET ${p} HTTP/1.1\r\nHost: ${strand.addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
    const onData = (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        s.off('data', onData);
        if (!got.startsWith('HTTP/1.1 101')) return reject(new Error('no upgrade: ' + got));
        // Keep reading (and dropping) unless the test pauses the socket.
        s.on('data', () => {});
        resolve(s);
      }
    };
    s.on('data', onData);
  });
}

function broadcast(room, message) {
  const body = JSON.stringify({ room, message });
  const [host, port] = [strand.addr.slice(0, strand.addr.lastIndexOf(':')), Number(strand.addr.split(':').pop())];
  return new Promise((resolve, reject) => {
    const req = http.request({
      host, port, method: 'POST', path: '/broadcast',
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Authorization: 'Bearer ' + TOKEN },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `f` until it returns a truthy value, failing after WAIT with `what`. */
async function until(what, f, ms = WAIT) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await f();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`never ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const eventsText = () => page.getByRole('table', { name: 'Recent events' }).innerText();

before(async () => {
  assert.ok(fs.existsSync(BIN), `no strand binary at ${BIN}: build it first (cargo build)`);
  assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strand-admin-'));
  strand = await startStrand(path.join(tmp, 'data'), [
    '--admin-token', TOKEN, '--max-queue-bytes', '65536', '--max-messages-per-second', '5',
    '--ping-interval', '600',
  ]);
  base = `http://${strand.addr}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  ctx.setDefaultTimeout(WAIT);
  page = await ctx.newPage();
}, { timeout: 60_000 });

after(async () => {
  for (const s of sockets) s.destroy();
  await browser?.close();
  if (strand) await stopStrand(strand);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30_000 });

// ---- scenarios (in order: they share the page and the server) -----------------------

test('without the token the page says 401; nothing is fetched from outside', async () => {
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  const res = await page.goto(base + '/admin');
  assert.equal(res.status(), 200);
  await until('401 shown', async () => (await page.getByRole('alert').innerText()).includes('401'));
  assert.match(await page.getByRole('status').innerText(), /401/);
  assert.deepEqual(external, []);
});

test('the token from #token= is kept, taken out of the URL and sent as Bearer only', async () => {
  const sent = [];
  const onRequest = (r) => { if (r.url().includes('/admin/stats')) sent.push(r); };
  page.on('request', onRequest);
  await page.goto(base + '/admin#token=' + TOKEN);
  await until('live', async () => (await page.getByRole('status').innerText()) === 'live');
  assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('strand-admin-token')), TOKEN);
  const last = sent[sent.length - 1];
  assert.equal(last.headers().authorization, 'Bearer ' + TOKEN);
  assert.ok(sent.every((r) => !r.url().includes(TOKEN)), 'never in a URL');
  assert.equal(await page.getByRole('alert').count(), 0, 'no problem shown');
  page.off('request', onRequest);
});

test('the Token field works too', async () => {
  await page.evaluate(() => sessionStorage.clear());
  await page.goto(base + '/admin');
  await until('401 shown', async () => (await page.getByRole('alert').innerText()).includes('401'));
  await page.getByLabel('Token').fill(TOKEN);
  await page.getByRole('button', { name: 'Use' }).click();
  await until('live', async () => (await page.getByRole('status').innerText()) === 'live');
});

test('tiles and charts by their accessible names, moving with connections and messages', async () => {
  for (const name of ['Connections', 'Messages in per second', 'Messages out per second', 'Rooms', 'Threads', 'Memory']) {
    await page.getByRole('group', { name, exact: true }).waitFor();
  }
  const connChart = page.getByRole('img', { name: 'Connections over time' });
  const msgChart = page.getByRole('img', { name: 'Messages per second' });
  await connChart.waitFor();
  await msgChart.waitFor();
  const tile = (name) => page.getByRole('group', { name, exact: true }).locator('.value').innerText();
  const before = Number(await connChart.getAttribute('data-now'));
  const pointsBefore = await connChart.locator('polyline').getAttribute('points');
  const inBefore = Number(await msgChart.getAttribute('data-in'));
  const talkers = [];
  for (let i = 0; i < 6; i++) {
    const s = await wsConnect(`/ws/chat/talker${i}`);
    s.write(frame(JSON.stringify({ type: 'join_room', room_name: 'lobby' })));
    talkers.push(s);
  }
  await until('6 more connections in the chart', async () =>
    Number(await connChart.getAttribute('data-now')) >= before + 6);
  await until('the Connections tile', async () => Number((await tile('Connections')).replace(/,/g, '')) >= before + 6);
  for (let i = 0; i < 3; i++) {
    talkers[0].write(frame(JSON.stringify({ type: 'message', room_name: 'lobby', content: 'hello ' + i })));
  }
  await until('messages in the chart', async () =>
    Number(await msgChart.getAttribute('data-in')) >= inBefore + 3);
  assert.notEqual(await connChart.locator('polyline').getAttribute('points'), pointsBefore, 'the line moved');
  await until('lobby in the largest rooms', async () =>
    (await page.getByRole('table', { name: 'Largest rooms' }).innerText()).includes('lobby'));
  assert.match(await tile('Rooms'), /^[1-9]/);
  assert.match(await tile('Threads'), /^[1-9]/);
  assert.match(await tile('Memory'), /iB$/);
});

test('a slow consumer and a rate-limited client are listed by id within seconds', async () => {
  const sloth = await wsConnect('/ws/chat/sloth');
  sloth.write(frame(JSON.stringify({ type: 'join_room', room_name: 'flood' })));
  // Give the join a moment to land, then stop reading for good.
  await until('sloth in flood', async () => (await page.getByRole('table', { name: 'Largest rooms' }).innerText()).includes('flood'));
  sloth.pause();
  const speedy = await wsConnect('/ws/chat/speedy');
  speedy.write(Buffer.concat(Array.from({ length: 12 }, () => frame('{"type":"echo"}'))));
  // Fill the kernel's buffers (a few MB on loopback) and then sloth's
  // queue, 16 broadcasts of 60 KB at a time.
  const big = 'x'.repeat(60 * 1024);
  await until('sloth listed as a slow consumer', async () => {
    const sent = await Promise.all(Array.from({ length: 16 }, () => broadcast('flood', big)));
    assert.ok(sent.every((s) => s === 200), String(sent));
    return /slow consumer\s+sloth/.test(await eventsText());
  }, 60_000);
  const sawSloth = Date.now();
  await until('speedy listed as rate-limited', async () => /rate limited\s+speedy/.test(await eventsText()));
  const sawSpeedy = Date.now();
  // Listed within seconds of happening: the server's own times say when.
  const recent = JSON.parse(await page.evaluate(async (t) =>
    (await fetch('/admin/stats', { headers: { Authorization: 'Bearer ' + t } })).text(), TOKEN)).recent;
  const at = (kind, client) => recent.find((e) => e.kind === kind && e.client === client).at;
  assert.ok(sawSloth - at('slow_consumer', 'sloth') < 5000, 'sloth listed within 5 s');
  assert.ok(sawSpeedy - at('rate_limited', 'speedy') < 5000, 'speedy listed within 5 s');
  assert.match(await eventsText(), /127\.0\.0\.1:\d+/, 'with the address');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-desktop.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-phone.png'), fullPage: false });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('no polling while the tab is hidden, again once visible', async () => {
  let polls = 0;
  const onRequest = (r) => { if (r.url().includes('/admin/stats')) polls++; };
  page.on('request', onRequest);
  await until('a poll', async () => polls > 0);
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until('paused', async () => (await page.getByRole('status').innerText()).includes('hidden'));
  // A request already under way when the tab hid may still go; none after.
  await new Promise((r) => setTimeout(r, 300));
  const atHide = polls;
  // Three poll periods of silence are the evidence.
  await new Promise((r) => setTimeout(r, 3500));
  assert.equal(polls, atHide, 'no request while hidden');
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until('polling again', async () => polls > atHide, 5000);
  page.off('request', onRequest);
});
