// Make a segmentation inside the real OHIF Viewer and export it with OHIF's own command (issue
// 12 point 5). In OHIF's `viewer` mode on the CT: "Add segmentation" (`createLabelmapForViewport`)
// and "Add segment" (`addSegment`) make Segment 1 and Segment 2; voxels are written through the
// Cornerstone voxel manager of each labelmap image and announced with
// triggerSegmentationDataModified, as a brush stroke does. Segment 1 covers the border of every
// slice (first and last row and column) and a block, plus a corner block on the first and last
// slice: it touches every face of the volume. Segment 2 is a block reaching the last slice.
//   --layers two: Segment 2 on a labelmap layer of its own (label value 2), so the two
//                 overlap (900 voxels), the way OHIF's SEG loader keeps overlapping segments;
//   --layers one: both in one labelmap (Segment 2 overwrites Segment 1 where they meet).
// Then OHIF's "download DICOM SEG" (`downloadSegmentation`) and the file is caught through the
// DevTools download events. Prints JSON: what Cornerstone held per segment (pixel indices per
// source SOP Instance UID) and the downloaded file.
//
//   node export.mjs --origin URL --study UID --ct-series UID --layers two|one --dir DIR
//                   --screenshot out.png [--timeout 180] [--chromium PATH]

import fs from 'node:fs';
import path from 'node:path';

import { Fail, run, session, withViewer } from './browser.mjs';

const S = session('export', ['origin', 'study', 'ct-series', 'layers', 'dir', 'screenshot']);
const { opt, log, sleep, poll } = S;

// Runs in the page: which voxel of stack slice k (of K), row r, column c belongs to segment n.
function inShape(n, k, r, c, R, C, K) {
  if (n === 1) {
    const border = r === 0 || r === R - 1 || c === 0 || c === C - 1;
    const block = k >= 5 && k <= 18 && r >= 20 && r <= 39 && c >= 20 && c <= 44;
    const caps = (k === 0 || k === K - 1) && r < 10 && c < 12;
    return border || block || caps;
  }
  return k >= 10 && k <= K - 1 && r >= 30 && r <= 49 && c >= 35 && c <= 59;
}

// Runs in the page: create the segmentation and its two segments, paint them, read them back.
async function createAndPaint([layers, shapeSrc]) {
  const shape = new Function(`return (${shapeSrc})`)();  // eslint-disable-line no-new-func
  const cs = window.cornerstone;
  const cst = window.cornerstoneTools;
  const viewportId = window.services.viewportGridService.getState().activeViewportId;
  const segmentationId = await window.commandsManager.run('createLabelmapForViewport',
    { viewportId });
  window.commandsManager.run('addSegment', { segmentationId });
  const seg = cst.segmentation.state.getSegmentation(segmentationId);
  const lm = seg.representationData.Labelmap;
  const primary = lm.labelmaps[lm.primaryLabelmapId];
  const refs = primary.referencedImageIds;
  const K = primary.imageIds.length;
  let layer2 = primary;
  if (layers === 'two') {
    // A second layer as OHIF's SEG loader builds one for overlapping segments (no public call
    // adds a layer in Cornerstone 5.6; the brush's own "private labelmap" uses label value 1,
    // which OHIF's exporter then writes as segment 1: see README).
    const id2 = `${segmentationId}-storage-1`;
    const imgs = cs.imageLoader.createAndCacheDerivedLabelmapImages(refs, {
      getDerivedImageId: (ref) => `${id2}-${ref.slice(-40)}` });
    layer2 = { labelmapId: id2, storageKind: 'stack', imageIds: imgs.map((i) => i.imageId),
      referencedImageIds: refs, labelToSegmentIndex: { 2: 2 } };
    lm.labelmaps[id2] = layer2;
    delete primary.labelToSegmentIndex[2];
    lm.segmentBindings[2] = { labelmapId: id2, labelValue: 2 };
  }
  const paint = (layer, n) => {
    layer.imageIds.forEach((imageId, k) => {
      const img = cs.cache.getImage(imageId);
      for (let r = 0; r < img.rows; r++) {
        for (let c = 0; c < img.columns; c++) {
          if (shape(n, k, r, c, img.rows, img.columns, K)) img.voxelManager.setAtIndex(r * img.columns + c, n);
        }
      }
    });
  };
  paint(primary, 1);
  paint(layer2, 2);
  cst.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(segmentationId);

  // what Cornerstone now holds: per segment, per source SOP Instance UID, the pixel indices
  const sopOf = (id) => cs.metaData.get('generalImageModule', id)?.sopInstanceUID ||
    /\/instances\/([0-9.]+)/.exec(id)?.[1];
  const segments = {};
  for (const layer of Object.values(lm.labelmaps)) {
    layer.imageIds.forEach((imageId, k) => {
      const img = cs.cache.getImage(imageId);
      const sop = sopOf(img.referencedImageId || layer.referencedImageIds[k]);
      const d = img.voxelManager.getScalarData();
      for (let p = 0; p < d.length; p++) {
        if (!d[p]) continue;
        const n = layer.labelToSegmentIndex?.[d[p]] ?? d[p];
        ((segments[n] ||= {})[sop] ||= []).push(p);
      }
    });
  }
  const first = cs.cache.getImage(primary.imageIds[0]);
  return { segmentationId, label: seg.label, rows: first.rows, columns: first.columns,
    labels: Object.fromEntries(Object.entries(seg.segments).map(([k, x]) => [k, x.label])),
    layers: Object.keys(lm.labelmaps).length, segments };
}

async function main() {
  fs.mkdirSync(opt.dir, { recursive: true });
  return withViewer(S, opt.screenshot, async (page, browser) => {
    // the exporter needs every referenced CT image in the cache
    await poll(page, 'every CT image in the cache', () => {
      const v = window.cornerstone.getRenderingEngines()[0].getViewports()[0];
      return v.getImageIds().every((id) => window.cornerstone.cache.getImage(id));
    });
    const cdp = await browser.target().createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow',
      downloadPath: path.resolve(opt.dir), eventsEnabled: true });
    const downloads = new Map();
    cdp.on('Browser.downloadWillBegin', (e) => downloads.set(e.guid, { name: e.suggestedFilename }));
    cdp.on('Browser.downloadProgress', (e) => {
      if (downloads.has(e.guid)) downloads.get(e.guid).state = e.state;
    });

    const t = Date.now();
    const painted = await page.evaluate(createAndPaint, [opt.layers, inShape.toString()]);
    const counts = Object.fromEntries(Object.entries(painted.segments).map(([n, bySop]) =>
      [n, Object.values(bySop).reduce((a, x) => a + x.length, 0)]));
    log(`made "${painted.label}" with ${painted.layers} labelmap layer(s), painted ` +
      `${JSON.stringify(counts)} in ${Date.now() - t} ms`);
    await sleep(1500);  // let OHIF render it (and compute its statistics) before the export
    S.check();

    const te = Date.now();
    const r = await page.evaluate(async (id) => {
      try {
        await window.commandsManager.run('downloadSegmentation', { segmentationId: id });
        return null;
      } catch (e) {
        return String(e?.message || e);
      }
    }, painted.segmentationId);
    if (r) throw new Fail(`OHIF's downloadSegmentation failed: ${r}`);
    const until = Date.now() + 30000;
    let done = null;
    while (!done) {
      S.check();
      done = [...downloads.values()].find((d) => d.state === 'completed');
      if ([...downloads.values()].some((d) => d.state === 'canceled')) {
        throw new Fail('the download was canceled');
      }
      if (!done && Date.now() > until) throw new Fail('no download within 30 s of downloadSegmentation');
      if (!done) await sleep(100);
    }
    const file = path.join(path.resolve(opt.dir), done.name);
    log(`OHIF exported ${done.name} (${fs.statSync(file).size} bytes) in ${Date.now() - te} ms`);
    await page.screenshot({ path: opt.screenshot });
    S.check();
    return { painted, counts, file, export_ms: Date.now() - te };
  });
}

await run(S, main);
