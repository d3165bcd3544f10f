//! Loss/metric curves and confusion matrices as SVG and PNG.
