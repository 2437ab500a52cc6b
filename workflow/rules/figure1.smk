# Figure 1 of the paper from a real run: a 2-D toy problem, its decision frontier before and after
# stitching a key made and embedded by the project's own keygen and embed code (fsw.figure1).
# Its parameters are config/hydra/figure1.yaml; it reads no MNIST and no other rule's output.


rule figure1:
    output:
        png=report(R + "/figure1/figure1_frontier.png", category="Keys", caption="../report/figure1.rst",
                   subcategory="figures", labels={"figure": "figure1_frontier"}),
        svg=R + "/figure1/figure1_frontier.svg",
        metrics=R + "/figure1/metrics.json",
    params:
        overrides=[],  # no sweep overrides: the toy's parameters live in config/hydra/figure1.yaml
    log:
        R + "/logs/figure1.log",
    benchmark:
        R + "/benchmarks/figure1.tsv"
    threads: 1
    script:
        "../scripts/figure1.py"
