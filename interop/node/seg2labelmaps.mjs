#!/usr/bin/env node
// Load a DICOM SEG the way OHIF / Cornerstone3D does and dump the labelmaps.
//
//   node seg2labelmaps.mjs SEG.dcm SOURCE_1.dcm [SOURCE_2.dcm ...] > out.json
//
// The SEG goes through the real adapter code path used by OHIF's
// cornerstone-dicom-seg extension:
//   adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(
//       referencedImageIds, arrayBuffer, { metadataProvider: metaData, tolerance })
// with Cornerstone's global metaData registry as the metadata provider, backed
// by a small provider built from the source images parsed with dcmjs.
// See README.md for the output format.  SEG2LM_DEBUG=1 logs metadata requests.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import dcmjs from 'dcmjs';
import { metaData, cache } from '@cornerstonejs/core';
import { adaptersSEG } from '@cornerstonejs/adapters';

const DEBUG = !!process.env.SEG2LM_DEBUG;
const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

// dcmjs and all Cornerstone loggers share dcmjs's loglevel instance.  Route
// warn/error messages logged while the adapter runs into the JSON "warnings"
// (a skipped frame, e.g. "Image not present in stack", is only ever a warning);
// everything else is dropped unless SEG2LM_DEBUG is set.
const warnings = [];
let collecting = false;
const defaultFactory = dcmjs.log.methodFactory;
const collectingFactory = (methodName, level, loggerName) => {
  const original = defaultFactory(methodName, level, loggerName);
  return (...args) => {
    if (collecting && (methodName === 'warn' || methodName === 'error')) {
      warnings.push(args.map(String).join(' '));
    }
    if (DEBUG) original(...args);
  };
};
// loglevel copies the factory into each named logger when it is created, so
// patch the ones the libraries created at import time as well as the root.
for (const logger of [dcmjs.log, ...Object.values(dcmjs.log.getLoggers())]) {
  logger.methodFactory = collectingFactory;
}
dcmjs.log.rebuild();

const fail = (message) => {
  process.stderr.write(`seg2labelmaps: ${String(message).split('\n')[0]}\n`);
  process.exit(1);
};

function readArrayBuffer(path) {
  const buf = readFileSync(path);
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

// Parse a source image header (pixel data is never needed) into a naturalized
// dataset, i.e. what OHIF's DicomMetadataStore holds as an "instance".
function readSourceInstance(path) {
  const dicom = DicomMessage.readFile(readArrayBuffer(path), { untilTag: '7FE00010' });
  const ds = DicomMetaDictionary.naturalizeDataset(dicom.dict);
  delete ds.PixelData;
  if (Number(ds.NumberOfFrames) > 1) {
    throw new Error(`${path}: multi-frame source images are not supported by this harness`);
  }
  return ds;
}

const num = (v) => (v === undefined || v === null || v === '' ? undefined : Number(v));
const nums = (v) => (v === undefined || v === null ? undefined : [].concat(v).map(Number));

// Answer the metadata modules Cornerstone (core + adapters) asks for, with the
// same field names/semantics as cornerstone's wadouri/OHIF metadata providers.
function moduleFor(type, ds) {
  switch (type) {
    case 'instance':
      return ds;
    case 'imagePlaneModule': {
      const iop = nums(ds.ImageOrientationPatient);
      const ps = nums(ds.PixelSpacing);
      return {
        frameOfReferenceUID: ds.FrameOfReferenceUID,
        rows: num(ds.Rows),
        columns: num(ds.Columns),
        imageOrientationPatient: iop,
        rowCosines: iop && iop.slice(0, 3),
        columnCosines: iop && iop.slice(3, 6),
        imagePositionPatient: nums(ds.ImagePositionPatient),
        sliceThickness: num(ds.SliceThickness),
        sliceLocation: num(ds.SliceLocation),
        pixelSpacing: ps,
        rowPixelSpacing: ps ? ps[0] : null,
        columnPixelSpacing: ps ? ps[1] : null,
      };
    }
    case 'generalSeriesModule':
      return {
        modality: ds.Modality,
        seriesInstanceUID: ds.SeriesInstanceUID,
        seriesNumber: num(ds.SeriesNumber),
        studyInstanceUID: ds.StudyInstanceUID,
        seriesDate: ds.SeriesDate,
        seriesTime: ds.SeriesTime,
      };
    case 'generalStudyModule':
      return { studyInstanceUID: ds.StudyInstanceUID, studyDate: ds.StudyDate, studyTime: ds.StudyTime };
    case 'patientModule':
      return { patientName: ds.PatientName, patientId: ds.PatientID };
    case 'generalImageModule':
      return {
        sopInstanceUID: ds.SOPInstanceUID,
        instanceNumber: num(ds.InstanceNumber),
        acquisitionNumber: num(ds.AcquisitionNumber),
        imageType: ds.ImageType,
      };
    case 'sopCommonModule':
      return { sopClassUID: ds.SOPClassUID, sopInstanceUID: ds.SOPInstanceUID };
    case 'imagePixelModule':
      return {
        samplesPerPixel: num(ds.SamplesPerPixel),
        photometricInterpretation: ds.PhotometricInterpretation,
        rows: num(ds.Rows),
        columns: num(ds.Columns),
        bitsAllocated: num(ds.BitsAllocated),
        bitsStored: num(ds.BitsStored),
        highBit: num(ds.HighBit),
        pixelRepresentation: num(ds.PixelRepresentation),
      };
    case 'modalityLutModule':
      return { rescaleIntercept: num(ds.RescaleIntercept), rescaleSlope: num(ds.RescaleSlope), rescaleType: ds.RescaleType };
    case 'frameModule':
      return { numberOfFrames: num(ds.NumberOfFrames) ?? 1, frameNumber: 1 };
    default:
      return undefined;
  }
}

function main(argv) {
  if (argv.length < 2) {
    fail('usage: node seg2labelmaps.mjs SEG.dcm SOURCE_1.dcm [SOURCE_2.dcm ...]');
  }
  const [segPath, ...sourcePaths] = argv;

  const instances = new Map(); // imageId -> naturalized source dataset
  const referencedImageIds = sourcePaths.map((p) => {
    const imageId = `wadouri:${pathToFileURL(resolve(p)).href}`;
    instances.set(imageId, readSourceInstance(p));
    return imageId;
  });

  const requested = new Map();
  const provider = (type, imageId) => {
    const ds = instances.get(imageId);
    if (!ds) return undefined; // e.g. derived labelmap ids: core's own providers answer
    const result = moduleFor(type, ds);
    if (DEBUG) {
      const key = `${type}${result === undefined ? ' (unanswered)' : ''}`;
      requested.set(key, (requested.get(key) ?? 0) + 1);
    }
    return result;
  };
  // High priority, as OHIF registers its provider; the adapter is then given
  // Cornerstone's global metaData registry, exactly like OHIF does.
  metaData.addProvider(provider, 10000);

  const segBuffer = readArrayBuffer(segPath);
  collecting = true;
  return adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(
    referencedImageIds,
    segBuffer,
    { metadataProvider: metaData, tolerance: 0.001 }
  ).then((result) => {
    collecting = false;
    if (DEBUG) process.stderr.write(`metadata requests: ${JSON.stringify(Object.fromEntries(requested))}\n`);
    return toJson(result, instances);
  });
}

function labelmapPixels(image) {
  const vm = image.voxelManager;
  const data = vm?.getScalarData?.() ?? image.getPixelData();
  if (!(data instanceof Uint8Array)) {
    throw new Error(`unexpected labelmap array type ${data?.constructor?.name}`);
  }
  return data;
}

function toJson(result, instances) {
  const segments = [];
  (result.segMetadata?.data ?? []).forEach((seg, index) => {
    if (!seg) return;
    segments.push({
      index,
      label: seg.SegmentLabel ?? null,
      number: seg.SegmentNumber ?? null,
    });
  });
  const layers = result.labelMapImages.map((images) => {
    const layer = {};
    for (const image of images) {
      const ds = instances.get(image.referencedImageId);
      if (!ds) throw new Error(`labelmap image for unknown source ${image.referencedImageId}`);
      layer[ds.SOPInstanceUID] = Buffer.from(labelmapPixels(image)).toString('base64');
    }
    return layer;
  });
  return {
    segments,
    overlapping: !!result.overlappingSegments,
    encoding: 'base64-uint8-row-major',
    layers,
    warnings,
  };
}

// The adapter processes frames in setTimeout chunks: an error thrown in a later
// chunk is an uncaught exception, not a rejection, and leaves the promise
// pending forever.  Treat all of these as failures.
process.on('uncaughtException', (err) => fail(err?.message ?? err));
process.on('unhandledRejection', (err) => fail(err?.message ?? err));
let settled = false;
process.on('beforeExit', () => {
  if (!settled) fail('the adapter never resolved its promise');
});

try {
  const out = await main(process.argv.slice(2));
  settled = true;
  process.stdout.write(JSON.stringify(out) + '\n');
  cache.purgeCache();
} catch (err) {
  fail(err?.message ?? err);
}
