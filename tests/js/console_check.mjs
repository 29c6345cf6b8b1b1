// The web console in headless Chromium (Debian's, driven by playwright-core, as browser_client.mjs):
// open the broker's own page, wait until it shows the queue at the depth stomp.py filled it to and
// the group with its master and slave, browse it, purge it from the page (accepting the
// confirmation), and wait until the page shows the depth fall to 0. Prints what it saw as JSON.
// Usage: node console_check.mjs '{"url", "queue", "depth", "user", "password", "screenshot", "timeoutMs"}'
// Prints "loaded" once the page shows its first poll, then the JSON result on the last line.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function run(cfg) {
  const profile = await mkdtemp(join(tmpdir(), 'batonmq-console-'));
  const problems = [];
  const dialogs = [];
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: FLAGS,
      viewport: { width: 1280, height: 760 },
      httpCredentials: cfg.user ? { username: cfg.user, password: cfg.password } : undefined,
    });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(cfg.timeoutMs);
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
    page.on('dialog', (dialog) => { dialogs.push(dialog.message()); dialog.accept(); });
    await page.goto(`${cfg.url}/?interval=300`);
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('updated'));
    console.log('loaded');  // the caller starts filling the queue now, so the history shows it grow
    const row = page.locator(`#destinations tr[data-destination="${cfg.queue}"]`);
    const depthCell = row.locator('td.depth');
    await page.waitForFunction(([queue, depth]) => {
      const cell = document.querySelector(`#destinations tr[data-destination="${queue}"] td.depth`);
      return cell && cell.textContent === String(depth);
    }, [cfg.queue, cfg.depth]);
    const sawDepth = Number(await depthCell.textContent());
    await page.waitForFunction(() => [...document.querySelectorAll('#members tr')]
      .some((tr) => tr.textContent.includes('slave')));
    const members = await page.locator('#members tr').allTextContents();
    const summary = await page.locator('#group-summary').textContent();
    const points = await row.locator('svg.spark polyline').getAttribute('points');
    await row.locator('button[data-action="browse"]').click();
    await page.waitForFunction(() => document.querySelectorAll('#messages tr').length > 0);
    const browsed = await page.locator('#messages tr').count();
    if (cfg.screenshot) await page.screenshot({ path: cfg.screenshot });
    await row.locator('button[data-action="purge"]').click();
    await page.waitForFunction((queue) => {
      const cell = document.querySelector(`#destinations tr[data-destination="${queue}"] td.depth`);
      return cell && cell.textContent === '0';
    }, cfg.queue);
    const afterPurge = Number(await depthCell.textContent());
    const error = await page.locator('#error').textContent();
    let slaveSays = null;
    if (cfg.slaveUrl) {  // the slave's own console: the group, and a note that it serves no destinations
      await page.goto(`${cfg.slaveUrl}/?interval=300`);
      await page.waitForFunction(() => !document.getElementById('not-master').hidden);
      slaveSays = await page.locator('#self').textContent();
    }
    return { sawDepth, afterPurge, browsed, members, summary, sparkPoints: points.split(' ').length, dialogs,
      error, slaveSays, problems, userAgent: await page.evaluate(() => navigator.userAgent) };
  } finally {
    if (context) await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

try {
  console.log(JSON.stringify(await run(JSON.parse(process.argv[2]))));
} catch (error) {
  console.error(`console check failed: ${error.message}`);
  process.exitCode = 1;
}
