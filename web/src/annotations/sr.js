// Comprehensive 3D SR (PS3.3 A.35.13) with a TID 1500 Measurement Report of TID 1410 planar ROI
// groups, written and read as Slim does: one Image Region (111030) SCOORD3D per ROI.
import * as dcmjs from 'dcmjs'

export const COMPREHENSIVE_3D_SR = '1.2.840.10008.5.1.4.1.1.88.34'
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1'
const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1417.1' // dcmjs-style root for ours

const { sr, data } = dcmjs
const code = (value, schemeDesignator, meaning) =>
  new sr.coding.CodedConcept({ value, schemeDesignator, meaning })

const CODES = {
  imagingMeasurements: ['126010', 'DCM'],
  measurementGroup: ['125007', 'DCM'],
  trackingUID: ['112040', 'DCM'],
  imageRegion: ['111030', 'DCM'],
  finding: ['121071', 'DCM'],
}

const { valueTypes, contentItems } = sr
const CONTAINS = valueTypes.RelationshipTypes.CONTAINS
const HAS_OBS_CONTEXT = valueTypes.RelationshipTypes.HAS_OBS_CONTEXT

// One TID 1410 Planar ROI Measurements group, made of content items directly: dcmjs 0.52's
// template of it rejects every tracking identifier (its check filters an Array subclass).
function planarGroup(roi, trackingUID, number) {
  const group = new valueTypes.ContainerContentItem({
    name: code('125007', 'DCM', 'Measurement Group'),
    relationshipType: CONTAINS,
  })
  group.ContentTemplateSequence = [{ MappingResource: 'DCMR', TemplateIdentifier: '1410' }]
  group.ContentSequence = [
    new valueTypes.TextContentItem({
      name: code('112039', 'DCM', 'Tracking Identifier'),
      value: `ROI #${number}`,
      relationshipType: HAS_OBS_CONTEXT,
    }),
    new valueTypes.UIDRefContentItem({
      name: code('112040', 'DCM', 'Tracking Unique Identifier'),
      value: trackingUID,
      relationshipType: HAS_OBS_CONTEXT,
    }),
    new valueTypes.CodeContentItem({
      name: code('121071', 'DCM', 'Finding'),
      value: code('85756007', 'SCT', 'Tissue'),
      relationshipType: CONTAINS,
    }),
    new contentItems.ImageRegion3D({
      graphicType: roi.scoord3d.graphicType,
      graphicData: roi.scoord3d.graphicData,
      frameOfReferenceUID: roi.scoord3d.frameOfReferenceUID,
    }),
  ]
  return group
}

/** The Comprehensive 3D SR of *rois* (DMV ROI objects) on the slide *images* (naturalized). */
export function buildReport({ rois, images, observer = 'ANONYMOUS', seriesDescription }) {
  const image = images[images.length - 1]
  const specimen = (image.SpecimenDescriptionSequence || [])[0] || {}
  const observationContext = new sr.templates.ObservationContext({
    observerPersonContext: new sr.templates.ObserverContext({
      observerType: code('121006', 'DCM', 'Person'),
      observerIdentifyingAttributes: new sr.templates.PersonObserverIdentifyingAttributes({
        name: observer,
      }),
    }),
    observerDeviceContext: new sr.templates.ObserverContext({
      observerType: code('121007', 'DCM', 'Device'),
      observerIdentifyingAttributes: new sr.templates.DeviceObserverIdentifyingAttributes({
        uid: IMPLEMENTATION_CLASS_UID,
        manufacturerName: 'wsiarchive',
        modelName: 'wsiarchive annotations',
      }),
    }),
    subjectContext: new sr.templates.SubjectContext({
      subjectClass: code('121027', 'DCM', 'Specimen'),
      subjectClassSpecificContext: new sr.templates.SubjectContextSpecimen({
        uid: specimen.SpecimenUID || data.DicomMetaDictionary.uid(),
        identifier: specimen.SpecimenIdentifier || image.ContainerIdentifier || 'UNKNOWN',
        containerIdentifier: image.ContainerIdentifier || 'UNKNOWN',
      }),
    }),
  })
  const imagingMeasurements = []
  rois.forEach((roi, index) => {
    imagingMeasurements.push(
      planarGroup(roi, (roi.properties && roi.properties.trackingUID) || roi.uid, index + 1),
    )
  })
  const measurementReport = new sr.templates.MeasurementReport({
    languageOfContentItemAndDescendants: new sr.templates.LanguageOfContentItemAndDescendants({}),
    observationContext,
    procedureReported: code('112703', 'DCM', 'Whole Slide Imaging'),
    imagingMeasurements,
  })
  const report = new sr.documents.Comprehensive3DSR({
    content: measurementReport[0],
    evidence: [image],
    seriesInstanceUID: data.DicomMetaDictionary.uid(),
    seriesNumber: 900,
    seriesDescription: seriesDescription || 'Annotations',
    sopInstanceUID: data.DicomMetaDictionary.uid(),
    instanceNumber: 1,
    manufacturer: 'wsiarchive',
  })
  return report
}

/** A naturalized data set as the bytes of a Part-10 file (PS3.10 §7.1). */
export function part10(dataset) {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
  }
  const dict = new data.DicomDict(data.DicomMetaDictionary.denaturalizeDataset(meta))
  dict.dict = data.DicomMetaDictionary.denaturalizeDataset(dataset)
  return dict.write()
}

const isNamed = (item, [value, scheme]) => {
  const name = (item.ConceptNameCodeSequence || [])[0]
  return name && name.CodeValue === value && name.CodingSchemeDesignator === scheme
}
const children = (item, concept) => (item.ContentSequence || []).filter((c) => isNamed(c, concept))

/**
 * The planar ROIs of a TID 1500 report in a Part-10 buffer: [{graphicType, graphicData (points
 * of 3 numbers), frameOfReferenceUID, trackingUID}], only those of *frameOfReferenceUID*.
 */
export function readReport(buffer, frameOfReferenceUID) {
  const dict = data.DicomMessage.readFile(buffer)
  const report = data.DicomMetaDictionary.naturalizeDataset(dict.dict)
  if (report.SOPClassUID !== COMPREHENSIVE_3D_SR) return []
  const found = []
  for (const measurements of children(report, CODES.imagingMeasurements)) {
    for (const group of children(measurements, CODES.measurementGroup)) {
      const region = children(group, CODES.imageRegion)[0]
      if (!region || region.ValueType !== 'SCOORD3D') continue
      if (frameOfReferenceUID && region.ReferencedFrameOfReferenceUID !== frameOfReferenceUID) {
        continue
      }
      const flat = [].concat(region.GraphicData)
      const points = []
      for (let i = 0; i + 2 < flat.length; i += 3) points.push(flat.slice(i, i + 3))
      const uidItem = children(group, CODES.trackingUID)[0]
      found.push({
        graphicType: region.GraphicType,
        points,
        frameOfReferenceUID: region.ReferencedFrameOfReferenceUID,
        trackingUID: uidItem ? uidItem.UID : undefined,
      })
    }
  }
  return found
}
