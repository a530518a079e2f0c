"""The evaluation report: metrics with intervals, the operating point, figures and a gallery."""

from glcf_train.report.build import Detector, ReportData, write_report

__all__ = ["Detector", "ReportData", "write_report"]
