// The browser the console's tests and benchmark drive: the system's Chromium (Debian package `chromium`, installed by
// `node scripts/setup.mjs test`), headless, without the background traffic a desktop browser makes.
export const chromiumPath = '/usr/bin/chromium';

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
