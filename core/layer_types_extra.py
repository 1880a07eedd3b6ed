"""ncnn layer types beyond the classifier set: detection post-processing, ROI pooling, shape utilities.

Facts from Tencent/ncnn ``docs/developer-guide/operation-param-weight-table.md`` and each layer's
``load_param`` (where the two disagree, ``load_param`` wins: PriorBox's variances default to
0.1/0.1/0.2/0.2 there).  Declared in the compact form of :mod:`ncnnc.core.layer_types`.
"""

from __future__ import annotations

from ncnnc.core.layer_types import layer_type

layer_type("PriorBox", "0:min_sizes=[f] 1:max_sizes=[f] 2:aspect_ratios=[f] 3:variance0=0.1 4:variance1=0.1 "
           "5:variance2=0.2 6:variance3=0.2 7:flip=1 8:clip=0 9:image_width=0 10:image_height=0 "
           "11:step_width=-233. 12:step_height=-233. 13:offset=0. 14:step_mmdetection=0 15:center_mmdetection=0",
           doc="Caffe-SSD prior boxes (two rows: boxes, variances) or, with one input, image_width/height -233 "
               "and no max_sizes, mxnet's MultiBoxPrior (one row).")
layer_type("DetectionOutput", "0:num_class=0 1:nms_threshold=0.05 2:nms_top_k=300 3:keep_top_k=100 "
           "4:confidence_threshold=0.5 5:variance0=0.1 6:variance1=0.1 7:variance2=0.2 8:variance3=0.2",
           doc="SSD decoding + per-class NMS; rows (label, score, xmin, ymin, xmax, ymax), count data-dependent.")
layer_type("YoloDetectionOutput", "0:num_class=20 1:num_box=5 2:confidence_threshold=0.01 3:nms_threshold=0.45 "
           "4:biases=[f]", doc="YOLOv2 region decoding (softmax class scores) + NMS; rows as DetectionOutput's.")
layer_type("Yolov3DetectionOutput", "0:num_class=20 1:num_box=5 2:confidence_threshold=0.01 "
           "3:nms_threshold=0.45 4:biases=[f] 6:anchors_scale=[f]",
           doc="YOLOv3 decoding of every input scale + NMS; rows as DetectionOutput's.  5=mask (a float "
               "array) is left out of the schema on purpose: ncnn's own example models write it as the "
               "floats' integer bits (5=6,1077936128,...), which ncnn reads back as floats.")
layer_type("Proposal", "0:feat_stride=16 1:base_size=16 2:pre_nms_topN=6000 3:after_nms_topN=300 "
           "4:nms_thresh=0.7 5:min_size=16", doc="Faster R-CNN region proposals (rois: count x 1 x 4).")
layer_type("ROIPooling", "0:pooled_width=0 1:pooled_height=0 2:spatial_scale=1.",
           doc="Max pooling of the first roi of the second input.")
layer_type("PSROIPooling", "0:pooled_width=7 1:pooled_height=7 2:spatial_scale=0.0625 3:output_dim=0",
           doc="Position-sensitive average pooling of the first roi of the second input.")
layer_type("ROIAlign", "0:pooled_width=0 1:pooled_height=0 2:spatial_scale=1. 3:sampling_ratio=0 4:aligned=0 "
           "5:version=0", doc="Bilinear ROI pooling of the first roi of the second input.")
layer_type("Squeeze", "0:squeeze_w=0 1:squeeze_h=0 11:squeeze_d=0 2:squeeze_c=0 3:axes=[]")
layer_type("ExpandDims", "0:expand_w=0 1:expand_h=0 11:expand_d=0 2:expand_c=0 3:axes=[]",
           doc="ncnn reads only 3=axes; 0/1/11/2 are listed by the operation table but ignored.")
layer_type("Einsum", "0:equation=[]", doc="0=equation as character codes, e.g. 'ij,jk->ik'.")
layer_type("Reorg", "0:stride=1 1:mode=0")
layer_type("SPP", "0:pooling_type=0 1:pyramid_height=1")
layer_type("MVN", "0:normalize_variance=0 1:across_channels=0 2:eps=0.0001")
layer_type("StatisticsPooling", "0:include_stddev=0")
layer_type("Cast", "0:type_from=0 1:type_to=0")
layer_type("Packing", "0:out_elempack=1 1:use_padding=0 2:cast_type_from=0 3:cast_type_to=0 "
           "4:storage_type_from=0 5:storage_type_to=0")
