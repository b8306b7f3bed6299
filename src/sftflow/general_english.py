"""Plain English prose for measuring forgetting on a real model.

    python -c "from sftflow.general_english import PARAGRAPHS; print(len(PARAGRAPHS))"

Written for sftflow (same licence as the project): short encyclopedic paragraphs about everyday
subjects, in the register a pretrained LLM has read most of. A real model's perplexity on them is
low and stable, so a rise after fine-tuning means the model lost some of its English, not that it
met unusual text. The tiny quickstart model was pre-trained on its own generated corpus and keeps
using that (`eval.general_text` unset); the real-model project writes these paragraphs to
`raw/general_english.txt`, one per line, and points `eval.general_text` at the file.
"""

from __future__ import annotations

PARAGRAPHS = [
    "Water moves in a constant cycle between the oceans, the air and the land. Heat from the sun turns water "
    "into vapour, which rises, cools and forms clouds. When the droplets in a cloud grow heavy enough, they fall "
    "as rain or snow, and rivers carry much of that water back to the sea.",
    "Bread is one of the oldest prepared foods. A basic loaf needs only flour, water, salt and yeast. The yeast "
    "feeds on sugars in the dough and releases carbon dioxide, which is trapped by a network of gluten and makes "
    "the bread rise before it is baked.",
    "The bicycle became popular at the end of the nineteenth century, when the chain drive and air-filled tyres "
    "made it safe and comfortable to ride. Today it is one of the most efficient ways to travel short distances, "
    "and many cities build separate lanes so that cyclists can ride away from cars.",
    "Bees collect nectar and pollen from flowers. As they move from one flower to the next, they carry pollen "
    "with them, which allows many plants to produce fruit and seeds. A large share of the crops that people eat "
    "depends on this work.",
    "The moon takes about twenty-seven days to travel once around the Earth. Because the same side always faces "
    "us, people on Earth never see the far side of the moon from the ground. Its changing shape in the night sky "
    "comes from how much of its sunlit half we can see.",
    "A library lends books, newspapers and films to the people of a town, usually for free. Many libraries also "
    "offer quiet rooms for study, computers with internet access and reading groups for children. Librarians "
    "help visitors find information and learn how to judge whether a source can be trusted.",
    "Trees take in carbon dioxide from the air and release oxygen. Their roots hold soil in place and reduce the "
    "risk of floods, and their leaves give shade that keeps streets cooler in summer. A single large oak can be "
    "home to hundreds of kinds of insects, birds and fungi.",
    "The heart is a muscle about the size of a fist. It pumps blood through the body, carrying oxygen and "
    "nutrients to every organ and taking waste away. At rest, an adult heart beats roughly sixty to a hundred "
    "times a minute.",
    "Trains run on steel rails, which roll with very little friction. For this reason a train can move heavy "
    "loads using much less energy than trucks on a road. Many countries have built high-speed lines on which "
    "passenger trains travel at more than three hundred kilometres an hour.",
    "Coffee is made from the roasted seeds of a plant that grows in warm, wet regions near the equator. The "
    "seeds are picked as red cherries, dried, roasted and ground. Hot water then draws out the flavour and the "
    "caffeine that makes many people feel more awake.",
    "A good night's sleep helps the body repair itself and helps the brain store what it learned during the day. "
    "Most adults need between seven and nine hours. Going to bed at the same time every night and avoiding "
    "bright screens late in the evening can make it easier to fall asleep.",
    "Volcanoes form where molten rock from deep inside the Earth reaches the surface. Some erupt violently, "
    "throwing ash high into the sky, while others release slow rivers of lava. Over thousands of years, the "
    "rock they leave behind can build entire islands.",
    "The printing press, developed in Europe in the fifteenth century, made it possible to copy books quickly "
    "and cheaply. Ideas spread faster than ever before, more people learned to read, and the number of books in "
    "circulation grew from thousands to millions within a few decades.",
    "Honey does not spoil easily because it contains very little water and is slightly acidic, so most bacteria "
    "cannot grow in it. Sealed jars of honey have been found in ancient tombs, and the honey inside was still "
    "safe to eat.",
    "Recycling turns used materials such as paper, glass and metal into new products. It saves energy and raw "
    "materials and keeps waste out of landfills. Sorting rubbish correctly at home matters, because a few wrong "
    "items can spoil a whole load of recycled material.",
    "Penguins are birds that cannot fly, but they are excellent swimmers. Their wings have become stiff "
    "flippers, and their bodies are shaped to move quickly through cold water. Most species live in the "
    "southern half of the world, and some of them spend months on the ice of Antarctica.",
    "A map is a drawing of a place seen from above. It uses symbols, colours and a scale to show roads, rivers, "
    "buildings and the height of the land. Before satellites existed, map makers measured the land by walking "
    "it with simple instruments and careful notes.",
    "Children learn their first language without lessons. By listening to the people around them, they pick up "
    "sounds, then words, and then the rules for putting words together. Most children can speak in short "
    "sentences by the age of three.",
    "Glass is made by heating sand, soda and lime until they melt together. While it is hot and soft, the glass "
    "can be blown, pressed or rolled into almost any shape. When it cools, it becomes hard and clear enough to "
    "use in windows, bottles and lenses.",
    "The Pacific is the largest and deepest ocean on Earth. It covers about a third of the planet's surface and "
    "holds more water than all the other oceans put together. Thousands of islands are scattered across it, "
    "many of them formed by volcanoes or coral reefs.",
    "Chess is played on a board of sixty-four squares by two players, each starting with sixteen pieces. The aim "
    "is to trap the other player's king so that it cannot escape. The rules are simple to learn, but the game "
    "has so many possible positions that people can study it for a lifetime.",
    "Vegetables such as carrots, spinach and beans provide vitamins, minerals and fibre. Doctors recommend eating "
    "several portions of fruit and vegetables every day. Steaming or eating them raw keeps more of their "
    "nutrients than boiling them for a long time.",
    "The wheel is one of the most important inventions in history. Early wheels were solid discs of wood, used "
    "for pottery and for carts. Later, wheels with spokes made vehicles lighter and faster, and today wheels of "
    "every size turn inside clocks, cars and machines.",
    "Rain forests grow in warm regions where it rains almost every day. They are home to more than half of the "
    "world's plant and animal species, although they cover only a small part of the land. Many medicines were "
    "first discovered in plants that grow there.",
    "A museum collects objects and keeps them safe so that people can learn from them. Some museums show "
    "paintings and sculpture, others show fossils, machines or everyday tools from the past. Visitors can see "
    "with their own eyes things they have only read about in books.",
    "Electricity reaches homes through a network of power lines. Power stations produce it by burning fuel, by "
    "splitting atoms or by using the force of wind, water and sunlight. Because it is hard to store in large "
    "amounts, supply must be matched to demand every second of the day.",
    "Letters were once the main way to send news over long distances. A letter written in one city could take "
    "weeks to reach another. Postal services grew with the railways, and later the telephone and email made it "
    "possible to reach someone in seconds.",
    "Mountains are formed over millions of years as the plates of the Earth's crust push against each other. "
    "The highest mountain above sea level is Mount Everest, on the border between Nepal and China. The air near "
    "its summit holds only about a third of the oxygen found at sea level.",
    "Cooking with friends or family is a pleasant way to spend an evening. One person can chop vegetables while "
    "another prepares a sauce, and everyone shares the meal at the end. Simple dishes such as soup, pasta or a "
    "salad are easy to make together.",
    "The human eye works a little like a camera. Light passes through the lens and forms an image on the back of "
    "the eye, where millions of cells turn it into signals for the brain. The brain then combines the pictures "
    "from both eyes to judge depth and distance.",
    "Clocks divide the day into hours, minutes and seconds. The earliest ones used the shadow of the sun or the "
    "steady flow of water. Mechanical clocks with gears and a swinging pendulum later made it possible to keep "
    "time accurately, even at night.",
    "Gardening teaches patience. A seed planted in spring may take weeks to appear above the soil and months to "
    "produce flowers or fruit. Plants need light, water and good soil, and a gardener soon learns that each "
    "kind of plant prefers different conditions.",
    "Wind is air moving from places of high pressure to places of low pressure. Near the coast, the land warms "
    "faster than the sea during the day, which creates a gentle breeze from the water. Sailors have used the "
    "wind to cross oceans for thousands of years.",
    "Elephants are the largest animals that live on land. They use their long trunks to breathe, smell, drink "
    "and pick up food. Elephants live in family groups led by an older female, and they are known for their "
    "good memory.",
    "Learning to play a musical instrument takes regular practice. At first, even simple songs feel difficult, "
    "but the hands slowly learn the movements. Many people find that playing music helps them relax after a "
    "busy day.",
    "Salt has been valued for thousands of years, both to flavour food and to preserve it. Before refrigerators "
    "existed, people kept meat and fish for the winter by covering them in salt. Some ancient roads were built "
    "mainly to carry salt from the coast to inland towns.",
    "A river begins as a small stream high in the hills, fed by rain and melting snow. As it flows downhill, "
    "other streams join it and it grows wider. Near the sea, it slows down and drops the sand and mud it has "
    "carried, sometimes forming a wide delta.",
    "Sunlight is made of many colours mixed together. When it passes through raindrops, the colours bend by "
    "different amounts and spread apart, which is why a rainbow appears when the sun shines during a shower. "
    "The sky looks blue because air scatters blue light more than red light.",
    "Walking is one of the simplest forms of exercise. It needs no special equipment, and a brisk walk of half "
    "an hour a day strengthens the heart and lifts the mood. Many people walk to work or take a short walk after "
    "lunch.",
    "Paper was first made in China about two thousand years ago, from plant fibres soaked in water, pressed into "
    "thin sheets and dried. The method spread slowly along trade routes to the Middle East and Europe. Today "
    "most paper is made from wood pulp.",
]
