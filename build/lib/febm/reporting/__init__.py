"""The HTML report: Jinja2 templates in report/, rendered to results/report/index.html."""
