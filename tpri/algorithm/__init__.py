"""The algorithm layer (torch only; imports no config, run or analysis code).

Modules: `inverse` (the regularized inverse of an RNN step), `tp` (the update directions:
`TargetProp`, `Backprop`), `dtp` (difference target propagation, DTP-PI), `capture` (TP's
linearized sweep replayed as a CUDA graph), `diagnostics` (how TP's direction relates to BP),
the models `models` (`RNN`), `gru` (`GRU`, `GRUInverse`) and `text_model` (`TextRNN`), and
`steps` (the torch optimizer stepping on the directions). Each model, direction and step declares
its options once (`Options`, fields of `tpri.spec`): its constructor checks its arguments against
them, and the configs layer joins them into the config schema.
"""
