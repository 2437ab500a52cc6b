import html

import yaml

from fsw.io import write_together
from fsw.stats.tables import html_page

text = yaml.safe_dump(dict(snakemake.config), sort_keys=False)
write_together({snakemake.output.yaml: text,
                snakemake.output.html: html_page("config.yaml", f"<pre>{html.escape(text)}</pre>")})
