"""What the training image, the serving image and the scripts must agree on, in the standard library only
(each image installs a different set of packages): the model artifact's layout and the words for a boolean."""
