"""The options of the tiny FER2013 fit the command-line tests run: a ResNet-18 with the standard
stem on 200 embedded rows, ten images a batch, loaded in the main process, on the CPU."""

TINY_FER = [
    "--config",
    "fer2013-resnet50",
    "--model.backbone=resnet18",
    "--model.stem=standard",
    "--data.synthetic_rows=200",
    "--data.batch_size=10",
    "--data.num_workers=0",
    "--trainer.accelerator=cpu",
]
