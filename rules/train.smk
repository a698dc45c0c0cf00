rule train:
    input:
        split=split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        record="results/{dataset}/runs/{model}-{variant}.json",
        curve="results/{dataset}/curves/{model}-{variant}.csv",
    log:
        "logs/train/{dataset}/{model}-{variant}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{model}-{variant}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: config["threads"]
    resources:
        mem_mb=train_mem,
        runtime=240,
        # GPUs from the model registry: 1 for models that train on one (SLURM: --gpus=1).
        gpu=lambda wildcards: int(uses_gpu(wildcards.model)),
    params:
        model_config=lambda wildcards: training_variant(
            config, wildcards.dataset, wildcards.model, wildcards.variant
        ),
        batch_size=config["eval_batch_size"],
        # Per-epoch checkpoints of the deep models (not outputs): a rerun after a crash resumes.
        checkpoint_dir="results/{dataset}/checkpoints",
        code=code("train"),
    script:
        "../workflow_scripts/train.py"
