"""What every source builds on: samples, reasons, scope, the exporter's own metrics and logs."""
