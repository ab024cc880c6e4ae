"""The course's plots: what a network learned, how training went, and where it errs.

One module per family of figures:

- :mod:`.learned`: first-layer filters and feature maps (what the network learned);
- :mod:`.recipes`: the stage diagram (frozen, trainable, BatchNorm in train mode) and the
  learning rate per stage (how a transfer recipe sets up the model);
- :mod:`.curves`: training histories, learning curves and learning-rate range tests;
- :mod:`.predictions`: image grids, top-k predictions, the confusion matrix and the
  misclassified images;
- :mod:`.gradcam`: Grad-CAM heatmaps (where the evidence for a class came from);
- :mod:`.strategies`: heatmaps of experiment tables and the bars of one strategy comparison;
- :mod:`.calibration`: the reliability diagram (its numbers: :mod:`tlcourse.calibration`);
- :mod:`.folders`: images per class of a photo folder (the imbalance check's bar chart).

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()``:
a notebook displays the returned figure, a script can ``fig.savefig(...)``, and tests run
on the Agg backend. Figures are detached from pyplot's list of open figures as soon as they
are made, so Jupyter's inline backend does not show them twice (once automatically, once as
the cell's value) and long sessions do not pile up open figures. Functions that draw one
panel accept ``ax=`` to draw into a figure of your own; they then return that figure.

Images are passed as ``uint8`` tensors ``(N, C, H, W)`` or ``(C, H, W)`` (what the course's
datasets hold), a list of such tensors, PIL images, or ``uint8`` NumPy arrays ``(H, W, C)``.

The lessons use ``from tlcourse import plots as vis`` and call ``vis.plot_history(...)``. The
numbers behind the confusion matrix are a metric: :func:`tlcourse.metrics.confusion_counts`.
"""
from .calibration import plot_reliability
from .curves import plot_history, plot_learning_curve, plot_lr_range
from .folders import plot_class_counts
from .gradcam import grad_cam, plot_grad_cam
from .learned import first_rgb_conv, plot_feature_maps, plot_first_layer_filters
from .predictions import plot_confusion_matrix, plot_image_grid, plot_misclassified, show_predictions
from .recipes import STATUS_COLOURS, plot_lr_per_stage, plot_stage_diagram, stage_summary
from .strategies import plot_heatmap, plot_strategies

__all__ = [
    "STATUS_COLOURS",
    "first_rgb_conv",
    "plot_class_counts",
    "grad_cam",
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_first_layer_filters",
    "plot_grad_cam",
    "plot_heatmap",
    "plot_history",
    "plot_image_grid",
    "plot_learning_curve",
    "plot_lr_range",
    "plot_lr_per_stage",
    "plot_misclassified",
    "plot_reliability",
    "plot_stage_diagram",
    "plot_strategies",
    "show_predictions",
    "stage_summary",
]
