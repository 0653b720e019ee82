"""Networks: every ``nn.Module`` a LightningModule trains, built by name in :mod:`.factory`.

Libraries first (timm classifiers and trunks, segmentation_models_pytorch segmenters); written by
hand only what no library has: the 48-px ResNet stem, FaceNet48 and the liver paper's ResNetFCN.
"""
