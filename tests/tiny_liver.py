"""The options of the tiny liver fit the multi-process tests run (sweep trials, DDP, two nodes):
a DeepLabV3+ with a ResNet-18 encoder on 32 px phantoms of six patients, four slices each, one
batch of four per epoch, loaded in the main process, on the CPU, without W&B."""

TINY_LIVER = [
    "--data.image_size=32",
    "--data.synthetic_patients=6",
    "--data.synthetic_slices=4",
    "--data.batch_size=4",
    "--data.num_workers=0",
    "--model.encoder_name=resnet18",
    "--model.num_overlays=0",
    "--trainer.limit_train_batches=1",
    "--trainer.limit_val_batches=1",
    "--trainer.accelerator=cpu",
    "--wandb_mode=disabled",
]
