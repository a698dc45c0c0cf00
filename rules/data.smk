rule fetch:
    input:
        custom_file,
    output:
        "data/raw/{dataset}/manifest.json",
    log:
        "logs/fetch/{dataset}.log",
    benchmark:
        "results/benchmarks/fetch/{dataset}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=120,
    params:
        entry=lambda wildcards: fetch_parameters(config["datasets"][wildcards.dataset]),
        # size and mtime of a custom file: an older copy put in its place refetches it too
        file=custom_file_stamp,
        mirror=config["data_mirror"],
        code=code("fetch"),
    script:
        "../workflow_scripts/fetch.py"


rule split:
    input:
        manifest="data/raw/{dataset}/manifest.json",
    output:
        matrices=expand("data/processed/{{dataset}}/{part}.npz", part=SPLIT_PARTS),
        user_ids="data/processed/{dataset}/users.csv",
        item_ids="data/processed/{dataset}/items.csv",
        stats="data/processed/{dataset}/stats.json",
    log:
        "logs/split/{dataset}.log",
    benchmark:
        "results/benchmarks/split/{dataset}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, input, attempt: 2048 * attempt
        + input.size_mb * 20 * attempt,
        runtime=60,
    params:
        entry=lambda wildcards: split_parameters(config["datasets"][wildcards.dataset]),
        code=code("split"),
    script:
        "../workflow_scripts/split.py"
