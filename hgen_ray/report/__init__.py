"""Reports: trials.csv, the search report and its plots, and the intervals every claim is judged by."""

from hgen_ray.report.plots import plot_risk_coverage
from hgen_ray.report.tables import (
    TEST_PREFIX,
    best_row,
    chosen_test_measures,
    format_cell,
    format_measures_table,
    last_error_line,
    summary_table,
    trial_rows,
    write_csv_atomic,
    write_search_report,
)

__all__ = ["TEST_PREFIX", "best_row", "chosen_test_measures", "format_cell", "format_measures_table",
           "last_error_line", "plot_risk_coverage", "summary_table", "trial_rows", "write_csv_atomic",
           "write_search_report"]
