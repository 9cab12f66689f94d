"""The simulators that the models, the bench and the demo share: vehicles and their faults
(vehicle.py), fleets (fleet.py), and the dealer-system data of a fleet (dealers.py)."""
