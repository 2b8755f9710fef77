// `strand bench` HTML reports in a real browser: Debian's chromium, driven
// by playwright-core, offline. The pages are opened from file:// with the
// context offline and every other request refused and counted (a report
// must fetch nothing); their charts are found by role and accessible name.
//
// Run by tests/bench_html.rs (heavy_bench_report_in_chromium_offline), which
// writes the pages first and passes them in the environment:
//   REPORT_RUN       the --html page of a real `strand bench echo` run
//   REPORT_RUN_P99   that run's rtt_us.p99 from its --json
//   REPORT_COMPARED  the page of `strand bench report before.json after.json`
// Optional: REPORT_SCREENSHOT=FILE.png saves the compared page (README).
// Not named *.test.mjs: `node --test tests/browser` (the page's test) must
// not pick it up without its pages.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BROWSER_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let browser;
let context;
const foreign = [];

before(async () => {
  for (const name of ['REPORT_RUN', 'REPORT_RUN_P99', 'REPORT_COMPARED']) {
    assert.ok(process.env[name], `${name} is not set: run this from tests/bench_html.rs`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
  context = await browser.newContext({ viewport: { width: 1000, height: 900 }, offline: true });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file://')) return route.continue();
    foreign.push(url);
    return route.abort();
  });
});

after(async () => {
  await context?.close();
  await browser?.close();
});

async function open(file) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(pathToFileURL(file).href);
  return { page, errors };
}

/** The chart named `name` is one visible image with a real size. */
async function chart(page, name) {
  const img = page.getByRole('img', { name, exact: true });
  assert.equal(await img.count(), 1, `one chart named "${name}"`);
  const box = await img.boundingBox();
  assert.ok(box && box.width > 300 && box.height > 100, `"${name}" is drawn: ${JSON.stringify(box)}`);
  return img;
}

test('a real run\'s report shows its latency chart and its figures', async () => {
  const { page, errors } = await open(process.env.REPORT_RUN);
  await chart(page, 'round trip latency by percentile');
  const p99 = page.locator('td[data-run="0"][data-key="rtt_us.p99"]');
  assert.equal(await p99.textContent(), process.env.REPORT_RUN_P99);
  assert.deepEqual(errors, []);
  await page.close();
});

test('two runs overlay with both labels, light and dark', async () => {
  const { page, errors } = await open(process.env.REPORT_COMPARED);
  const dist = await chart(page, 'round trip latency by percentile');
  for (const label of ['before', 'after']) {
    assert.equal(await dist.locator('text', { hasText: new RegExp(`^${label}$`) }).count(), 1, `legend ${label}`);
  }
  for (const name of ['messages per second over time', 'p99 latency over time',
    'connections over time', 'errors by cause']) {
    await chart(page, name);
  }
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ colorScheme: 'light' });
  const light = await background();
  if (process.env.REPORT_SCREENSHOT) {
    await page.screenshot({ path: process.env.REPORT_SCREENSHOT, fullPage: false });
  }
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await background();
  assert.notEqual(light, dark, 'the page follows prefers-color-scheme');
  assert.deepEqual(errors, []);
  await page.close();
});

test('nothing was fetched from outside the files', () => {
  assert.deepEqual(foreign, []);
});
