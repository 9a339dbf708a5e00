// The browser session both OHIF checks share (check.mjs: load SEGs; export.mjs: make and export
// one): arguments, the deadline, failure on any console error / page error / failed or >= 400
// request / request leaving the origin, Debian's chromium with software WebGL through
// puppeteer-core, and OHIF's `viewer` mode opened on a study with the CT on screen.

import puppeteer from 'puppeteer-core';

export class Fail extends Error {}

// Console errors OHIF 3.13 logs although nothing is wrong. Empty: every console error fails.
const BENIGN = [];

// Parse `--key value` arguments (`required` must be present) and set up the clock and the list
// of problems. OHIF_CHECK_TOLERATE (a regular expression) is for exploring a SEG that fails:
// matching problems are logged, not counted. Never set it in CI.
export function session(prog, required) {
  const opt = { timeout: '180', chromium: '/usr/bin/chromium' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of required) {
    if (!opt[k]) {
      console.error(`${prog}: --${k} is required`);
      process.exit(2);
    }
  }
  const t0 = Date.now();
  const s = { prog, opt, deadline: t0 + Number(opt.timeout) * 1000, problems: [] };
  s.elapsed = () => ((Date.now() - t0) / 1000).toFixed(1);
  s.log = (...a) => console.error(`[${s.elapsed()} s]`, ...a);
  s.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // A URL for a one-line message: path only, long UIDs shortened to their last digits.
  s.short = (u) => u.replace(opt.origin, '').replace(/\d+(\.\d+){6,}/g, (m) => `…${m.slice(-6)}`)
    .slice(0, 200);
  const tolerate = process.env.OHIF_CHECK_TOLERATE ? new RegExp(process.env.OHIF_CHECK_TOLERATE) : null;
  const realPush = s.problems.push.bind(s.problems);
  s.problems.push = (p) => {
    if (tolerate && tolerate.test(p)) {
      s.log(`tolerated: ${p}`);
      return s.problems.length;
    }
    return realPush(p);
  };
  // Poll from Node (page.evaluate in a loop) rather than page.waitForFunction, which was seen
  // to stall on a slow headless machine once the page is busy rendering.
  s.poll = async (page, what, fn, arg, { every = 500 } = {}) => {
    for (;;) {
      if (s.problems.length) throw new Fail(s.problems[0]);
      const v = await page.evaluate(fn, arg);
      if (v) return v;
      if (Date.now() > s.deadline) throw new Fail(`timeout after ${s.elapsed()} s waiting for ${what}`);
      await s.sleep(every);
    }
  };
  s.check = () => {
    if (s.problems.length) throw new Fail(s.problems[0]);
  };
  return s;
}

// Launch chromium, open OHIF's viewer on the study, wait for the CT on screen, run
// `body(page, browser)`; on failure save `<screenshot>-failed.png`; always close chromium.
export async function withViewer(s, screenshot, body) {
  const { opt, problems, log, short } = s;
  const browser = await puppeteer.launch({
    executablePath: opt.chromium,
    headless: true,
    defaultViewport: { width: 1600, height: 1000 },
    args: [
      '--no-sandbox',                       // runs as root in CI
      '--use-angle=swiftshader',            // software WebGL (no GPU on CI)
      '--enable-unsafe-swiftshader',
      '--window-size=1600,1000',
      '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-default-apps', '--disable-domain-reliability',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',  // loopback only
    ],
  });
  let page = null;
  try {
    page = await browser.newPage();
    await page.setRequestInterception(true);
    page.on('request', (r) => {
      const u = r.url();
      if (u.startsWith(opt.origin + '/') || u.startsWith('data:') || u.startsWith('blob:')) {
        r.continue();
      } else {
        problems.push(`request outside the origin: ${short(u)}`);
        r.abort();
      }
    });
    page.on('console', (m) => {
      const text = m.text();
      if (process.env.OHIF_CHECK_DEBUG) log(`console.${m.type()}: ${text.slice(0, 300)}`);
      if (m.type() === 'error' && !BENIGN.some((re) => re.test(text))) {
        problems.push(`console error: ${text.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
    });
    page.on('pageerror', (e) => problems.push(`page error: ${String(e.message).slice(0, 300)}`));
    page.on('requestfailed', (r) => {
      if (!problems.some((p) => p.includes(short(r.url())))) {  // not twice (aborted above)
        problems.push(`request failed: ${r.failure()?.errorText} ${short(r.url())}`);
      }
    });
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${short(r.url())}`);
    });
    // A returning user: OHIF's first-visit tour (shepherd.js, "Scrolling Through Images 1/11")
    // would cover the study browser and swallow the double-click.
    await page.evaluateOnNewDocument(() => {
      localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));
    });
    const url = `${opt.origin}/${opt.mode || 'viewer'}?StudyInstanceUIDs=${opt.study}`;
    log(`open ${url}`);
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: Number(opt.timeout) * 1000 });
    await s.poll(page, 'the CT in the viewport', (ct) => {
      const vps = window.cornerstone?.getRenderingEngines?.()?.[0]?.getViewports?.() || [];
      return vps.some((v) => (v.getCurrentImageId?.() || '').includes(`/series/${ct}/`));
    }, opt['ct-series']);
    log('CT displayed');
    const closed = await page.evaluate(() => {  // the tour, should it show anyway
      const b = [...document.querySelectorAll('button')].find((e) => /skip all/i.test(e.innerText));
      if (b) b.click();
      return !!b;
    });
    if (closed) log('closed the OHIF tour');
    return await body(page, browser);
  } catch (e) {
    if (page) {
      const p = screenshot.replace(/\.png$/, '') + '-failed.png';
      await page.screenshot({ path: p }).then(() => log(`screenshot ${p}`), () => {});
    }
    throw e;
  } finally {
    await browser.close();
  }
}

// Run `main` under a watchdog; print its JSON result on stdout, or one "<prog>: ..." line on
// stderr and exit 1.
export async function run(s, main) {
  const watchdog = setTimeout(() => {
    console.error(`${s.prog}: timeout after ${s.elapsed()} s (the browser stopped answering)`);
    process.exit(1);
  }, Number(s.opt.timeout) * 1000 + 20000);
  try {
    const result = await main();
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify({ ...result, seconds: Number(s.elapsed()) }) + '\n');
  } catch (e) {
    console.error(`${s.prog}: ${e instanceof Fail ? e.message : `${e.name}: ${e.message}`.split('\n')[0]}`);
    process.exit(1);
  }
}
