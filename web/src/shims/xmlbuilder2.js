// Stands in for xmlbuilder2 (a Node XML library that vtk.js's VTP/VTI file readers import,
// reached through Cornerstone3D's mesh cache and orientation marker): the viewer reads no
// VTK XML files, and the real one needs Node's "events".
export function create() {
  throw new Error('VTK XML files are not supported by the built-in viewer')
}
