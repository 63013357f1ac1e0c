// Chromium (Debian's) through playwright-core, and the pieces that drive a VS Code workbench.
import { chromium } from 'playwright-core';
import { mkdirSync, rmSync } from 'node:fs';

/** Launches headless Chromium with a fresh profile. */
export async function launchBrowser({ executablePath, profileDir, viewport = { width: 1400, height: 1000 }, colorScheme = 'light' }) {
  rmSync(profileDir, { recursive: true, force: true });
  mkdirSync(profileDir, { recursive: true });
  return chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    viewport,
    colorScheme,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * An init script (runs in the page before its own scripts) that adds developmentOptions to
 * the workbench configuration in <meta id="vscode-workbench-web-configuration" data-settings>,
 * as vscode-remote URIs on the page's host: the extension under development and the test
 * entry module. code-server ignores the ?payload= route in its product build.
 */
export function developmentOptionsScript({ extensionPaths, extensionTestsPath }) {
  return {
    content: `(() => {
      const cfg = ${JSON.stringify({ extensionPaths, extensionTestsPath })};
      const uri = (p) => ({ scheme: 'vscode-remote', authority: location.host, path: p });
      const patch = () => {
        const meta = document.getElementById('vscode-workbench-web-configuration');
        if (!meta || meta.dataset.mechanistPatched) return !!meta;
        const settings = JSON.parse(meta.getAttribute('data-settings'));
        settings.developmentOptions = {
          ...(settings.developmentOptions || {}),
          extensions: cfg.extensionPaths.map(uri),
          ...(cfg.extensionTestsPath ? { extensionTestsPath: uri(cfg.extensionTestsPath) } : {}),
        };
        meta.setAttribute('data-settings', JSON.stringify(settings));
        meta.dataset.mechanistPatched = '1';
        return true;
      };
      if (!patch()) {
        const mo = new MutationObserver(() => { if (patch()) mo.disconnect(); });
        mo.observe(document, { childList: true, subtree: true });
      }
    })();`,
  };
}

/** Waits for the workbench to be drawn. */
export async function waitForWorkbench(page, timeout = 60_000) {
  await page.waitForSelector('.monaco-workbench', { timeout });
  // The activity bar appears once the layout is restored.
  await page.waitForSelector('.activitybar .action-item', { timeout });
}

/** Runs a command from the command palette, by its title as shown there. */
export async function runCommand(page, title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row').first().waitFor();
  await page.keyboard.press('Enter');
}
