"""PDD for any CNN: channel groups found by tracing, exact removal, costs from open counts.

`TracedModel` (`model.py`) wraps a network built from a model spec (torchvision, timm, a user's
file) and implements `zoo.protocol.PrunableModel`, so distillation, pruning, costs and checkpoints
treat it like a hand-written zoo network.

How the pieces fit (each step is a module of this package):

1. **Groups** (`trace.py`). Torch-Pruning's `DependencyGraph` traces the network once (autograd,
   at the model's input size) and yields, for every conv/linear layer, the set of channels that
   must be removed with its output channels: the BN that follows, residual adds, concatenations,
   depthwise convolutions, squeeze-and-excitation products, flatten into a linear layer. We read
   each group as *slots* (`groups.py`): (layer, in|out dimension, positions), each position
   tagged with the root channel it follows.
2. **Units** (`units.py`). A mask gate removes one *unit*. Normally a unit is one root channel.
   A grouped convolution (1 < groups < channels) can only lose whole convolution groups, and it
   ties the channels that feed a convolution group to the ones it produces: units are the
   connected components of that relation (union-find), so such a group's gates are whole groups.
3. **Masks** (`gates.py`). One `ChannelMask` per group, applied where the group's channels enter
   a layer that mixes channels (a dense or grouped conv's input, a linear layer's input). That is
   the paper's placement (after the producing layer's normalisation and activation), and it makes
   removal exact: a removed channel can reach nothing else, whatever elementwise ops sit between.
4. **Removal** (`slicing.py`). Slicing conv, linear and BN weights to the kept positions of each
   slot.
5. **Trust, but verify** (`verify.py`). A group Torch-Pruning cannot describe exactly (a channel
   split, a layer we cannot slice, a reshape that mixes channels) is left unmasked and listed in
   `refused`; then a seeded check with randomised weights compares the masked and the pruned
   network, and any group whose removal does not reproduce its mask is refused too. So a group
   is either pruned exactly or listed, never silently mis-pruned.
6. **Costs** (`count.py`). MACs, params and layer widths for any number of open units per group,
   from the channel counts and one forward pass that records every conv/linear call.

The network's output layers (the conv/linear layers whose output reaches the model's output
without another such layer in between) keep their width. `layers.py` names the layer kinds all
of these steps cut along.
"""

from pdd_edge.zoo.traced.gates import remove_gates
from pdd_edge.zoo.traced.model import TracedModel

__all__ = ["TracedModel", "remove_gates"]
