// The built-in web page in a real browser: Debian's chromium, driven by
// playwright-core, against the real strand binary.
//
// The pages reach strand through a small TCP relay that the test owns, so
// the test can cut a page's connection (and refuse new ones for a while)
// exactly as a flaky network or a proxy timeout would, without any hook in
// the page. A third client, "carol", talks to strand directly and keeps
// sending while the pages are cut off. The relay can also go silent without
// closing anything (a socket that died without a close event).
//
// Run: node --test tests/browser/   (tests/browser.rs does this under cargo)
// Needs: /usr/bin/chromium and `npm ci` in tests/browser. Missing either is
// a failure, not a skip.

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
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 812 };
const BROWSER_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// ---- strand ------------------------------------------------------------------

/**
 * Starts strand (with `extra` flags after the usual ones) and resolves once
 * it logs `listening on ADDR`.
 */
function startStrand(bind, dirs, extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [
      'serve', '--bind', bind, '--log-level', 'info',
      '--data-dir', dirs.data, '--tail-dir', dirs.tail, ...extra,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('strand did not log "listening on" in time; log:\n' + log));
    }, WAIT);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`strand exited early (${code}); log:\n${log}`));
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /listening on (\S+)/.exec(log);
      if (m && !child.addr) {
        clearTimeout(timer);
        child.addr = m[1];
        child.log = () => log;
        resolve(child);
      }
    });
  });
}

/** SIGTERM, then wait for the exit (SIGKILL if it hangs). */
function stopStrand(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const hard = setTimeout(() => child.kill('SIGKILL'), WAIT);
    child.removeAllListeners('exit');
    child.on('exit', (code, signal) => { clearTimeout(hard); resolve({ code, signal }); });
    child.kill('SIGTERM');
  });
}

// ---- the relay the pages go through ---------------------------------------------

function startRelay(target) {
  const sockets = new Set();
  const stallers = new Set();
  let blocked = false;
  const server = net.createServer((client) => {
    if (blocked) { client.destroy(); return; }
    const [host, port] = splitAddr(relay.target);
    const upstream = net.connect(port, host);
    const stall = () => {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    };
    stallers.add(stall);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => { sockets.delete(s); stallers.delete(stall); client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const relay = {
    target,
    server,
    listen: () => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port))),
    /** Drops every open connection, both ways, at once. */
    cut() { for (const s of sockets) s.destroy(); },
    /**
     * Stops forwarding, both ways, on every open connection without closing
     * it: no FIN, no RST, just silence. Later connections are relayed.
     */
    stall() { for (const stall of stallers) stall(); stallers.clear(); },
    block() { blocked = true; },
    unblock() { blocked = false; },
    close() { this.cut(); return new Promise((r) => server.close(r)); },
  };
  return relay;
}

function splitAddr(addr) {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

/** Polls `check` until it is true, failing after WAIT. */
async function poll(check, what) {
  const deadline = Date.now() + WAIT;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting until ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `online` of `GET /rooms/{room}/count`: who strand says is in a room. */
async function online(addr, room) {
  const res = await fetch(`http://${addr}/rooms/${room}/count`);
  assert.equal(res.status, 200);
  return (await res.json()).online;
}

/** The HTTP status strand answers a browser-like upgrade of `path` with. */
function upgradeStatus(addr, path) {
  const [host, port] = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const req = http.get({
      host, port, path,
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), Origin: `http://${addr}`,
      },
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
  });
}

/** An HS256 JWT, as `--jwt-secret` wants it. */
function jwt(claims, secret) {
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = part({ alg: 'HS256', typ: 'JWT' }) + '.' + part(claims);
  return unsigned + '.' + crypto.createHmac('sha256', secret).update(unsigned).digest('base64url');
}

/**
 * Records each WebSocket a page opens: its URL, the JSON frames it sent and
 * received (null for anything else), and whether it has closed.
 */
function watchSockets(page) {
  const sockets = [];
  const parse = (frame) => { try { return JSON.parse(frame.payload); } catch { return null; } };
  page.on('websocket', (ws) => {
    const s = { url: ws.url(), sent: [], received: [], closed: false };
    sockets.push(s);
    ws.on('framesent', (f) => s.sent.push(parse(f)));
    ws.on('framereceived', (f) => s.received.push(parse(f)));
    ws.on('close', () => { s.closed = true; });
  });
  return sockets;
}

// ---- shared fixtures ------------------------------------------------------------

let tmp, dirs, strand, relay, base, context, alice, bob, carol, clockBrowser;
// Extra strands being stopped; after() waits for them (a stop can take a few
// seconds while the browser holds idle connections open).
const stopping = [];

/**
 * A fresh context, in a browser of its own, whose clock Playwright owns:
 * the pages' timers run in real time unless the test jumps them forward
 * with `ctx.clock.fastForward`. (A clock belongs to a whole context, so
 * alice's and bob's stay real.)
 */
async function clockContext() {
  clockBrowser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
  const ctx = await clockBrowser.newContext({ viewport: DESKTOP });
  ctx.setDefaultTimeout(WAIT);
  await ctx.clock.install();
  return ctx;
}

async function shot(page, name, { fullPage = false } = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, name + '.png'), fullPage });
}

async function join(page, name, room) {
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Room', { exact: true }).fill(room);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.locator('#status', { hasText: 'Connected as ' + name }).waitFor();
  await page.locator('#members li', { hasText: name }).waitFor();
}

async function say(page, text, { enter = false } = {}) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  if (enter) await box.press('Enter');
  else await page.getByRole('button', { name: 'Send', exact: true }).click();
}

/** Texts of the room messages shown in a page, in order. */
function messageTexts(page) {
  return page.locator('#chat li.msg .text').allTextContents();
}

async function waitForMessage(page, text) {
  await page.locator('#chat li.msg .text', { hasText: text }).first().waitFor();
}

/** Opens carol: a hub client straight to strand (not through the relay). */
async function openCarol(page, addr) {
  await page.goto(`http://${addr}/healthz`);
  await page.evaluate(async () => {
    const ws = new WebSocket(`ws://${location.host}/ws/chat/carol`);
    window.carol = ws;
    await new Promise((resolve, reject) => {
      ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.type === 'welcome') ws.send(JSON.stringify({ type: 'join_room', room_name: 'lobby' }));
        if (m.type === 'room_join' && m.client_id === 'carol') resolve();
      };
      ws.onerror = () => reject(new Error('carol could not connect'));
    });
  });
}

function carolSays(text) {
  return carol.evaluate((content) => {
    window.carol.send(JSON.stringify({ type: 'message', content, room_name: 'lobby' }));
  }, text);
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `no strand binary at ${BIN}: build it first (cargo build)`);
  assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strand-browser-'));
  dirs = { data: path.join(tmp, 'data'), tail: path.join(tmp, 'logs'), profile: path.join(tmp, 'profile') };
  fs.mkdirSync(dirs.tail);
  fs.writeFileSync(path.join(dirs.tail, 'app.log'), 'boot: strand test log\n');
  fs.writeFileSync(path.join(dirs.tail, 'access.log'), '');
  strand = await startStrand('127.0.0.1:0', dirs);
  relay = startRelay(strand.addr);
  base = `http://127.0.0.1:${await relay.listen()}`;
  context = await chromium.launchPersistentContext(dirs.profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: BROWSER_ARGS,
    viewport: DESKTOP,
  });
  context.setDefaultTimeout(WAIT);
  alice = context.pages()[0] || await context.newPage();
  bob = await context.newPage();
  await bob.setViewportSize(PHONE);
  carol = await context.newPage();
}, { timeout: 60_000 });

after(async () => {
  await context?.close();
  await clockBrowser?.close();
  await relay?.close();
  await Promise.all([strand && stopStrand(strand), ...stopping]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30_000 });

// ---- scenarios --------------------------------------------------------------------

test('the page carries the named controls and nothing from outside', { timeout: 90_000 }, async () => {
  const external = [];
  alice.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  const res = await alice.goto(base + '/');
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /text\/html/);
  // Exactly one match even for a loose (substring) lookup, so a client
  // that asks for "Message" does not also find, say, a "Messages" list.
  for (const exact of [true, false]) {
    for (const name of ['Room', 'Name', 'Message', 'File']) {
      assert.equal(await alice.getByLabel(name, { exact }).count(), 1, `one control labelled ${name}`);
    }
    for (const name of ['Join', 'Send', 'Follow', 'Stop']) {
      assert.equal(await alice.getByRole('button', { name, exact }).count(), 1, `one button named ${name}`);
    }
  }
  await alice.waitForLoadState('networkidle');
  assert.deepEqual(external, []);
});

test('two pages join one room and see each other\'s messages', { timeout: 90_000 }, async () => {
  await bob.goto(base + '/');
  await join(alice, 'alice', 'lobby');
  await join(bob, 'bob', 'lobby');
  await alice.locator('#members li', { hasText: 'bob' }).waitFor();
  await alice.getByText('bob joined').waitFor();

  await say(alice, 'hello from alice');
  await waitForMessage(bob, 'hello from alice');
  await say(bob, 'hi alice, this is bob on a phone', { enter: true });
  await waitForMessage(alice, 'hi alice, this is bob on a phone');
  assert.equal(await bob.getByLabel('Message', { exact: true }).inputValue(), '', 'Enter sent and cleared the box');
  assert.deepEqual(await messageTexts(alice), await messageTexts(bob));
});

test('a page follows a file and sees lines appended to it', { timeout: 90_000 }, async () => {
  const log = path.join(dirs.tail, 'app.log');
  await alice.getByLabel('File', { exact: true }).selectOption('app.log');
  await alice.getByRole('button', { name: 'Follow', exact: true }).click();
  await alice.locator('#tail-state', { hasText: 'Following app.log' }).waitFor();

  fs.appendFileSync(log, 'GET /healthz 200 0.3ms\n');
  await alice.locator('#tail li', { hasText: 'GET /healthz 200 0.3ms' }).waitFor();
  for (let i = 1; i <= 12; i++) {
    fs.appendFileSync(log, `2026-11-22T21:0${i % 10}:00Z INFO request ${i} served in ${i * 3} ms\n`);
  }
  await alice.locator('#tail li', { hasText: 'request 12 served' }).waitFor();
  assert.equal(await alice.locator('#tail li', { hasText: 'GET /healthz 200 0.3ms' }).count(), 1);

  // More talk, so the screenshots show a lived-in room.
  await say(bob, 'deploy finished, watching the log now', { enter: true });
  await waitForMessage(alice, 'deploy finished');
  await shot(alice, 'desktop');
  await shot(bob, 'phone');
  await alice.emulateMedia({ colorScheme: 'dark' });
  await bob.emulateMedia({ colorScheme: 'dark' });
  await shot(alice, 'desktop-dark');
  await shot(bob, 'phone-dark');
  await alice.emulateMedia({ colorScheme: 'light' });
  await bob.emulateMedia({ colorScheme: 'light' });
});

test('the tail keeps a bounded number of lines, the reader\'s place, and notes truncation and rotation', { timeout: 90_000 }, async () => {
  const file = path.join(dirs.tail, 'access.log');
  const tail = bob.locator('#tail');
  await bob.getByLabel('File', { exact: true }).selectOption('access.log');
  await bob.getByRole('button', { name: 'Follow', exact: true }).click();
  await bob.locator('#tail-state', { hasText: 'Following access.log' }).waitFor();

  // An hour of a busy log arrives at once: the page keeps the newest lines.
  const burst = Array.from({ length: 2500 }, (_, i) => `line-${String(i + 1).padStart(4, '0')}`);
  fs.appendFileSync(file, burst.join('\n') + '\n');
  await bob.locator('#tail li', { hasText: 'line-2500' }).waitFor();
  const kept = await bob.locator('#tail li').count();
  assert.ok(kept <= 2000, `at most 2000 lines kept, got ${kept}`);
  assert.equal(await bob.locator('#tail li', { hasText: 'line-0001' }).count(), 0);
  const gap = () => tail.evaluate((n) => n.scrollHeight - n.scrollTop - n.clientHeight);
  await poll(async () => (await gap()) < 40, 'the tail followed the bottom');

  // Scrolled up, the reader stays where they are and is offered a way down.
  await tail.evaluate((n) => { n.scrollTop = 0; });
  fs.appendFileSync(file, 'line-2501\n');
  await bob.locator('#tail li', { hasText: 'line-2501' }).waitFor();
  assert.equal(await tail.evaluate((n) => n.scrollTop), 0, 'no jump while reading back');
  const jump = bob.locator('#tail-jump');
  await jump.waitFor();
  await jump.click();
  await poll(async () => (await gap()) < 40, 'jumped to the newest line');

  fs.truncateSync(file, 0);
  await bob.getByText('access.log was truncated').waitFor();
  fs.appendFileSync(file, 'after-truncate\n');
  await bob.locator('#tail li', { hasText: 'after-truncate' }).waitFor();

  fs.renameSync(file, file + '.1');
  fs.writeFileSync(file, 'fresh-file\n');
  await bob.getByText('access.log was replaced (rotated)').waitFor();
  await bob.locator('#tail li', { hasText: 'fresh-file' }).waitFor();
  assert.equal(await bob.locator('#tail li', { hasText: 'after-truncate' }).count(), 1);
});

test('a cut connection comes back and shows every message once', { timeout: 90_000 }, async () => {
  await openCarol(carol, strand.addr);
  await alice.locator('#members li', { hasText: 'carol' }).waitFor();
  const sent = [];
  const tick = async () => {
    const text = `tick-${String(sent.length + 1).padStart(2, '0')}`;
    sent.push(text);
    await carolSays(text);
  };
  for (let i = 0; i < 5; i++) await tick();

  // Cut both pages off and keep them off while carol goes on talking.
  relay.block();
  relay.cut();
  await alice.getByText('Connection lost').first().waitFor();
  await alice.locator('#status[data-state="down"]').waitFor();
  for (let i = 0; i < 10; i++) await tick();
  const line = 'written while the page was offline';
  fs.appendFileSync(path.join(dirs.tail, 'app.log'), line + '\n');
  relay.unblock();

  // Carol keeps talking through the reconnect.
  const reconnected = alice.locator('#status', { hasText: 'Connected as alice' }).waitFor();
  while (sent.length < 40) {
    await tick();
    await new Promise((r) => setTimeout(r, 50));
  }
  await reconnected;
  await waitForMessage(alice, sent.at(-1));
  await waitForMessage(bob, sent.at(-1));
  for (const page of [alice, bob]) {
    const ticks = (await messageTexts(page)).filter((t) => t.startsWith('tick-'));
    assert.deepEqual(ticks, sent, 'every message once, in order');
  }
  // The tail resumed from its offset: the line written while cut off, once.
  await alice.locator('#tail li', { hasText: line }).waitFor();
  assert.equal(await alice.locator('#tail li', { hasText: line }).count(), 1);
  assert.equal(await alice.locator('#tail li', { hasText: 'request 12 served' }).count(), 1);
  assert.equal(await alice.getByText('messages may have been missed').count(), 0);

  // Someone who joins now sees the room's recent history, once.
  const dave = await context.newPage();
  try {
    await dave.goto(base + '/');
    await join(dave, 'dave', 'lobby');
    await waitForMessage(dave, sent.at(-1));
    const ticks = (await messageTexts(dave)).filter((t) => t.startsWith('tick-'));
    assert.deepEqual(ticks, sent, 'the history, in order');
    assert.equal(await dave.getByText('messages may have been missed').count(), 0);
  } finally {
    await dave.close();
  }
});

test('after a server restart the page says messages may have been missed', { timeout: 90_000 }, async () => {
  const addr = strand.addr;
  const lost = await alice.getByText('Connection lost').count();
  await stopStrand(strand);
  await poll(async () => (await alice.getByText('Connection lost').count()) > lost, 'alice saw the drop');
  strand = await startStrand(addr, dirs);
  relay.target = strand.addr;

  // The pages back off while strand is down (up to 10 s between tries).
  const backoff = { timeout: 2 * WAIT };
  await alice.getByText('messages may have been missed').waitFor(backoff);
  await bob.getByText('messages may have been missed').waitFor(backoff);
  await alice.locator('#status', { hasText: 'Connected as alice' }).waitFor();
  await alice.locator('#members li', { hasText: 'bob' }).waitFor();

  // The restarted server's room works: a message round-trips once.
  await say(bob, 'back after the restart', { enter: true });
  await waitForMessage(alice, 'back after the restart');
  assert.equal(await alice.locator('#chat li.msg .text', { hasText: 'back after the restart' }).count(), 1);
  // The file is the same file: following resumes where it was.
  fs.appendFileSync(path.join(dirs.tail, 'app.log'), 'after restart\n');
  await alice.locator('#tail li', { hasText: 'after restart' }).waitFor();
  assert.equal(await alice.locator('#tail li', { hasText: 'written while the page was offline' }).count(), 1);

  await shot(alice, 'desktop-restart');
  await shot(bob, 'phone-restart');
  await shot(bob, 'phone-restart-full', { fullPage: true });
});

test('a second tab with the same name takes it over, and the first stays off until told', { timeout: 90_000 }, async () => {
  const ctx = await clockContext();
  try {
    const first = await ctx.newPage();
    const second = await ctx.newPage();
    const firstSockets = watchSockets(first);
    await first.goto(base + '/');
    await second.goto(base + '/');
    // A page in the background answers each click only after a second or
    // two: the test brings the page it works with to the front.
    await first.bringToFront();
    await join(first, 'tina', 'takeover');
    await second.bringToFront();
    await join(second, 'tina', 'takeover');

    const replaced = 'Disconnected: "tina" connected from another tab or device';
    const letGo = 'This name connected somewhere else, so this page let go. Press Join to take it back.';
    await first.locator('#status[data-state="down"]', { hasText: replaced }).waitFor();
    await first.getByText(letGo).waitFor();

    // Run every timer the page could have set (its backoff tops out at
    // 10 s) at once. A reconnect would set the status to "Connecting…"
    // on the spot and take the name back from the second tab.
    await ctx.clock.fastForward(60_000);
    assert.equal(await first.locator('#status').textContent(), replaced, 'the first tab did not try again');
    assert.equal(await first.locator('#status').getAttribute('data-state'), 'down');
    // Nor when the browser says it is online or shown again, which make a
    // page that is waiting to reconnect try at once.
    await first.evaluate(() => {
      window.dispatchEvent(new Event('online'));
      document.dispatchEvent(new Event('visibilitychange'));
    });
    assert.equal(await first.locator('#status').textContent(), replaced, 'online/visible did not reconnect it');
    assert.equal(firstSockets.length, 1, 'the first tab opened no new socket');
    await second.bringToFront();
    await say(second, 'the second tab has the name');
    await waitForMessage(second, 'the second tab has the name');
    await second.locator('#status', { hasText: 'Connected as tina' }).waitFor();
    assert.equal(await second.getByText(letGo).count(), 0);
    assert.equal(await online(strand.addr, 'takeover'), 1);

    // Join takes the name back; now the second tab lets go, and neither
    // loops.
    await first.bringToFront();
    await first.getByRole('button', { name: 'Join', exact: true }).click();
    await first.locator('#status', { hasText: 'Connected as tina' }).waitFor();
    await second.locator('#status[data-state="down"]', { hasText: replaced }).waitFor();
    await ctx.clock.fastForward(60_000);
    assert.equal(await second.locator('#status').textContent(), replaced, 'the second tab did not try again');
    await say(first, 'back in the first tab');
    await waitForMessage(first, 'back in the first tab');
    assert.equal(await first.getByText(letGo).count(), 1);
    assert.equal(firstSockets.length, 2);
    assert.equal(await online(strand.addr, 'takeover'), 1);
  } finally {
    await ctx.close();
  }
});

test('with --jwt-secret the page passes ?token= on; without a token it shows it is offline', { timeout: 90_000 }, async () => {
  const secret = 'browser-test-secret';
  const locked = await startStrand('127.0.0.1:0', { data: path.join(tmp, 'data-jwt'), tail: dirs.tail },
    ['--jwt-secret', secret]);
  const keyed = await context.newPage();
  const bare = await context.newPage();
  try {
    const token = jwt({ sub: 'tom', exp: Math.floor(Date.now() / 1000) + 600 }, secret);
    const sockets = watchSockets(keyed);
    const requests = [];
    keyed.on('request', (r) => requests.push(new URL(r.url())));
    await keyed.bringToFront();
    await keyed.goto(`http://${locked.addr}/?token=${token}`);
    await join(keyed, 'tom', 'vault');
    await say(keyed, 'sealed with a token');
    await waitForMessage(keyed, 'sealed with a token');
    assert.equal(sockets.length, 1);
    assert.equal(new URL(sockets[0].url).searchParams.get('token'), token, 'the upgrade carried the token');
    assert.ok(requests.some((u) => u.pathname === '/files' && u.searchParams.get('token') === token),
      'GET /files carried the token');
    assert.equal(await online(locked.addr, 'vault'), 1);

    // Without a token strand refuses the upgrade (401). The page must not
    // look connected: it says it is offline and keeps retrying.
    assert.equal(await upgradeStatus(locked.addr, '/ws/chat/tom'), 401);
    const attempts = watchSockets(bare);
    // Every state the status goes through, not only the last one.
    await bare.addInitScript(() => {
      window.statusLog = [];
      document.addEventListener('DOMContentLoaded', () => {
        const status = document.getElementById('status');
        new MutationObserver(() => window.statusLog.push(status.dataset.state + ': ' + status.textContent))
          .observe(status, { attributes: true, childList: true, characterData: true, subtree: true });
      });
    });
    await bare.goto(`http://${locked.addr}/`);
    await bare.bringToFront();
    await bare.getByLabel('Name', { exact: true }).fill('tom');
    await bare.getByLabel('Room', { exact: true }).fill('vault');
    await bare.getByRole('button', { name: 'Join', exact: true }).click();
    await poll(() => attempts.filter((s) => s.closed).length >= 3, 'three upgrades were refused');
    await bare.locator('#status[data-state="down"]', { hasText: 'Offline, reconnecting' }).waitFor();
    assert.ok(attempts.every((s) => s.received.length === 0), 'nothing came over a refused socket');
    const shown = await bare.evaluate(() => window.statusLog);
    assert.ok(shown.some((s) => s.startsWith('down: Offline, reconnecting')), shown.join('\n'));
    assert.deepEqual(shown.filter((s) => /^up|Connected/.test(s)), [], 'never looked connected');
    assert.equal(await bare.locator('#members li').count(), 0);
    assert.equal(await bare.getByText('You joined').count(), 0);
    // Let in as tom, it would have replaced the page that has the token.
    assert.equal(await keyed.locator('#status').textContent(), 'Connected as tom');
    assert.equal(await keyed.getByText('connected somewhere else').count(), 0);
    assert.equal(await online(locked.addr, 'vault'), 1);
  } finally {
    await keyed.close();
    await bare.close();
    stopping.push(stopStrand(locked));
  }
});

test('a silent socket is probed after a quiet heartbeat and dropped when the probe goes unanswered', { timeout: 90_000 }, async () => {
  // A relay of its own, so that going silent touches only this page; a
  // clock the test owns, so that the page's 30 s heartbeat and the 15 s it
  // then waits for an answer pass at once. Sockets and strand are real.
  const quietRelay = startRelay(strand.addr);
  const url = `http://127.0.0.1:${await quietRelay.listen()}/`;
  const ctx = await clockContext();
  try {
    const page = await ctx.newPage();
    const sockets = watchSockets(page);
    await page.goto(url);
    await join(page, 'erin', 'quiet');
    const first = sockets[0];
    const welcome = first.received.find((m) => m?.type === 'welcome');
    const heartbeat = welcome.heartbeat_s * 1000;
    assert.equal(heartbeat, 30_000, "strand's default --ping-interval");
    const probes = () => first.sent.filter((m) => m?.type === 'echo' && m.probe === true).length;
    const answers = () => first.received.filter((m) => m?.type === 'echo' && m.original?.probe === true).length;
    const connected = page.locator('#status', { hasText: 'Connected as erin' });

    // A quiet line gets one probe per quiet heartbeat; each answer counts
    // as life, so the next quiet heartbeat probes again.
    for (let n = 1; n <= 2; n++) {
      await page.clock.fastForward(heartbeat + 1_000);
      await poll(() => answers() === n, `probe ${n} was answered`);
      assert.equal(probes(), n);
    }
    assert.equal(await page.getByText('Connection lost').count(), 0);

    // The line goes silent without closing: the probe gets nothing back.
    quietRelay.stall();
    await page.clock.fastForward(heartbeat + 1_000);
    await poll(() => probes() === 3, 'the page probed the silent line');
    // 41 s of silence: within heartbeat + 15 s, the page still waits.
    // (Giving up would change the status and the chat at once.)
    await page.clock.fastForward(10_000);
    assert.equal(await page.locator('#status').textContent(), 'Connected as erin', 'still waiting for an answer');
    assert.equal(await page.getByText('Connection lost').count(), 0);
    assert.equal(sockets.length, 1);
    // 46 s: it gives the socket up and reconnects on a new one.
    await page.clock.fastForward(5_000);
    await page.getByText('Connection lost (no answer); reconnecting…').waitFor();
    await connected.waitFor();
    await page.getByText(/^Reconnected/).waitFor();
    assert.equal(answers(), 2, 'the third probe was never answered');
    assert.equal(sockets.length, 2);
    await say(page, 'alive on a new socket');
    await waitForMessage(page, 'alive on a new socket');
    // strand lets the replaced connection go once its close goes
    // unanswered (2 s): then only the new one is in the room.
    await poll(async () => (await online(strand.addr, 'quiet')) === 1, 'the silent connection left the room');
  } finally {
    await ctx.close();
    await quietRelay.close();
  }
});

test('over https:// the page chats on wss:// on the same port', { timeout: 90_000 }, async () => {
  // A self-signed ECDSA certificate for 127.0.0.1 made here with openssl.
  // Chromium trusts exactly its key (--ignore-certificate-errors-spki-list,
  // the SPKI's SHA-256): the page must run as a secure origin, as it would
  // under a real certificate, without a CA installed in a system store.
  const tls = path.join(tmp, 'tls');
  fs.mkdirSync(tls);
  const key = path.join(tls, 'key.pem');
  const cert = path.join(tls, 'cert.pem');
  const run = (args) => new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`openssl ${args[0]}: ${err}`))));
  });
  await run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  await run(['req', '-x509', '-new', '-key', key, '-subj', '/CN=127.0.0.1', '-days', '2',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-out', cert]);
  const spki = crypto.createHash('sha256')
    .update(crypto.createPublicKey(fs.readFileSync(key)).export({ type: 'spki', format: 'der' }))
    .digest('base64');
  const secure = await startStrand('127.0.0.1:0', dirs, ['--tls-cert', cert, '--tls-key', key]);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...BROWSER_ARGS, `--ignore-certificate-errors-spki-list=${spki}`],
  });
  try {
    const ctx = await browser.newContext({ viewport: PHONE });
    ctx.setDefaultTimeout(WAIT);
    const [one, two] = [await ctx.newPage(), await ctx.newPage()];
    const sockets = watchSockets(one);
    const url = `https://${secure.addr}/`;
    const res = await one.goto(url);
    assert.equal(res.status(), 200);
    assert.equal(await one.evaluate(() => window.isSecureContext), true, 'a secure context');
    await two.goto(url);
    await join(one, 'tess', 'secure');
    await join(two, 'tom', 'secure');
    await say(one, 'hello over wss');
    await waitForMessage(two, 'hello over wss');
    assert.match(sockets[0].url, /^wss:\/\/127\.0\.0\.1:\d+\/ws\/chat\/tess/);
    await ctx.close();
  } finally {
    await browser.close();
    stopping.push(stopStrand(secure));
  }
});
