"""An example theorem package: gradient descent reaches the closed-form ridge-regression optimum."""
