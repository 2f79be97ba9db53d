"""The results page of a spec (`neuroexec report SPEC --html`): one self-contained HTML file, one module
per part of it (curves, group results and their figures, saliency, provenance) and page.py that puts
them together and writes the file."""
