// Page helpers shared by the tests that drive the link-room web client in Chromium
// (link-room.test.mjs, cli-interop.test.mjs): recorded pages, steps that screenshot every page
// on failure, waiting for the page's state and messages, creating a room.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import { saveScreenshot } from './harness.mjs';

// A page in a fresh context that appends its WebSocket frames to `frames` as
// {label, dir: 'sent'|'recv', url, payload}, accepts dialogs ("Clear history?" confirmations)
// and is registered in `pages` under `label`.
export async function newRecordedPage(browser, label, { pages, frames, contextOptions = {} }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 }, ...contextOptions });
  const page = await context.newPage();
  page.on('websocket', (ws) => {
    ws.on('framesent', ({ payload }) => frames.push({ label, dir: 'sent', url: ws.url(), payload: String(payload) }));
    ws.on('framereceived', ({ payload }) => frames.push({ label, dir: 'recv', url: ws.url(), payload: String(payload) }));
  });
  page.on('dialog', (d) => d.accept());
  pages.set(label, page);
  return page;
}

// Returns a step(name, fn): it() with `timeout` that, on failure, screenshots every page in
// `pages` (FAILED-<prefix><name>-<label>.png) before rethrowing.
export const screenshotSteps = (pages, { timeout, prefix = '' }) => (name, fn) => it(name, { timeout }, async () => {
  try {
    await fn();
  } catch (err) {
    for (const [label, page] of pages) {
      await saveScreenshot(page, `FAILED-${prefix}${name.slice(0, 40)}-${label}`).catch(() => {});
    }
    throw err;
  }
});

export const waitState = (page, state, timeout = 15_000) =>
  page.waitForSelector(`body[data-state="${state}"]`, { timeout });

// Waits for a message with exactly this text in the page's list.
export const waitForText = (page, text, timeout = 10_000) =>
  page.waitForFunction((t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t), text, { timeout });

export async function sendWithEnter(page, text, timeout = 10_000) {
  await page.fill('#composer', text);
  await page.press('#composer', 'Enter');
  await waitForText(page, text, timeout);
}

// /new_chat, an optional room password, #create-room; resolves once the room is online with the
// /new_chat response and the invite link the page shows.
export async function createRoomOn(page, baseUrl, { password } = {}) {
  const res = await page.goto(`${baseUrl}/new_chat`);
  assert.equal(res.status(), 200);
  await waitState(page, 'new');
  if (password) {
    await page.check('#room-password-enable');
    await page.fill('#room-password', password);
  }
  await page.click('#create-room');
  await waitState(page, 'online');
  return { res, invite: await page.inputValue('#invite-link') };
}
