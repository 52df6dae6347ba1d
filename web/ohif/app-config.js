/**
 * OHIF 3's configuration for wsiarchive: its stock DICOMweb data source pointed at the
 * archive. Serve it as /app-config.js next to OHIF's prebuilt dist/ (scripts/setup.sh --ohif
 * unpacks it into web/vendor/ohif/dist) on any web host, and list that host's origin in the
 * archive's cors_origins. Replace the three roots with the archive's public URL.
 */
window.config = {
  name: 'wsiarchive',
  routerBasename: null,
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: true,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  groupEnabledModesFirst: true,
  maxNumRequests: {
    interaction: 100,
    thumbnail: 75,
    prefetch: 25,
  },
  defaultDataSourceName: 'wsiarchive',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'wsiarchive',
      configuration: {
        friendlyName: 'wsiarchive',
        name: 'wsiarchive',
        wadoUriRoot: 'http://127.0.0.1:8080/dicomweb',
        qidoRoot: 'http://127.0.0.1:8080/dicomweb',
        wadoRoot: 'http://127.0.0.1:8080/dicomweb',
        qidoSupportsIncludeField: true,
        supportsReject: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: true,
        supportsWildcard: true,
        staticWado: false,
        singlepart: 'bulkdata,video',
        bulkDataURI: {
          enabled: true,
        },
        omitQuotationForMultipartRequest: true,
      },
    },
  ],
};
