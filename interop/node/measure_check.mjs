#!/usr/bin/env node
// Run Cornerstone3D's own measurement code on data prepared by a Python test.
//
//   node measure_check.mjs < request.json > answer.json
//
// request.json may hold any of:
//   "stats":  {"values": [...], "points": [[x,y,z]...], "spacing": [sx,sy,sz]}
//             -> VolumetricCalculator (the calculator getStatistics uses) fed voxel by voxel
//   "bidirectional": {"dims": [w,h], "spacing": [sx,sy], "mask": [0/1 row-major],
//                     "points": [[x,y], ...]}   (contour vertices, in voxel indices)
//             -> createBidirectionalForSlice with Cornerstone's own isInSegment tests
//   "suv":    [instance metadata objects]  -> calculateSUVScalingFactors
// Each answer is the library's result, reduced to plain numbers.
import { readFileSync } from 'node:fs';
import { VolumetricCalculator } from './node_modules/@cornerstonejs/tools/dist/esm/utilities/segmentation/VolumetricCalculator.js';
import { createBidirectionalForSlice } from './node_modules/@cornerstonejs/tools/dist/esm/utilities/segmentation/findLargestBidirectional.js';
import { createIsInSegmentMetadata } from './node_modules/@cornerstonejs/tools/dist/esm/utilities/segmentation/isLineInSegment.js';
import { calculateSUVScalingFactors } from '@cornerstonejs/calculate-suv';

const request = JSON.parse(readFileSync(0, 'utf8'));
const answer = {};

if (request.stats) {
  const { values, points, spacing } = request.stats;
  VolumetricCalculator.statsInit({ storePointData: false });
  values.forEach((value, i) => {
    VolumetricCalculator.statsCallback({ value, pointLPS: points[i], pointIJK: points[i] });
  });
  const s = VolumetricCalculator.getStatistics({ spacing, unit: 'HU' });
  answer.stats = {
    count: s.count.value, mean: s.mean.value, stdDev: s.stdDev.value, min: s.min.value,
    max: s.max.value, median: s.median.value, skewness: s.skewness.value,
    kurtosis: s.kurtosis.value, volume: s.volume.value, center: s.center.value,
    maxLPS: s.maxLPS.value, minLPS: s.minLPS.value,
  };
}

if (request.bidirectional) {
  const { dims, spacing, mask, points } = request.bidirectional;
  const [w, h] = dims;
  // world = index * spacing, one slice at k = 0
  const imageData = {
    worldToIndex: (p) => [p[0] / spacing[0], p[1] / spacing[1], p[2]],
  };
  const voxelManager = { getAtIndex: (i) => mask[i] };
  const isInSegment = createIsInSegmentMetadata({
    dimensions: [w, h, 1], imageData, voxelManager, segmentIndex: 1,
  });
  const world = points.map(([x, y]) => [x * spacing[0], y * spacing[1], 0]);
  const result = createBidirectionalForSlice({ polyData: { points: world } }, isInSegment);
  answer.bidirectional = result
    ? { maxMajor: result.maxMajor, maxMinor: result.maxMinor,
        majorAxis: result.majorAxis.map((p) => Array.from(p)),
        minorAxis: result.minorAxis.map((p) => Array.from(p)) }
    : null;
}

if (request.suv) {
  try {
    answer.suv = calculateSUVScalingFactors(request.suv).map((f) => f.suvbw);
  } catch (err) {
    answer.suv_error = String(err.message || err);
  }
}

process.stdout.write(JSON.stringify(answer));
