# Figure 1 of the paper from a real run: a 2-D toy problem, its decision frontier before and after
# stitching a key made and embedded by the project's own keygen and embed code (fsw.figure1).
# Its parameters are src/fsw/conf/figure1.yaml; it reads no MNIST and no other rule's output.


rule figure1:
    output:
        png=report(f"{R}/figure1/figure1_frontier.png", category="Keys", caption="../report/figure1.rst",
                   subcategory="figures", labels={"figure": "figure1_frontier"}),
        svg=f"{R}/figure1/figure1_frontier.svg",
        metrics=f"{R}/figure1/metrics.json",
    params:
        overrides=[],  # no sweep overrides: the toy's parameters live in src/fsw/conf/figure1.yaml
    log:
        f"{LOGS}/figure1.log",
    benchmark:
        f"{BENCHMARKS}/figure1.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure1.py"
