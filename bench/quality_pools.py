"""Text pools for bench/quality.py: facts, topics, code, translations and junk fragments.

Hand-written so the clean rows read like real SFT data (several tasks, formats and lengths);
bench/quality.py composes rows from them with a seeded random generator.
"""

# (relation, subject, short answer, sentence answer). Each fact is used by at most one clean row
# or one dataset-level group, so clean rows are never paraphrases of each other.
FACTS = [
    ("capital", "Australia", "Canberra", "The capital of Australia is Canberra."),
    ("capital", "Canada", "Ottawa", "Ottawa is the capital of Canada."),
    ("capital", "Japan", "Tokyo", "Tokyo is Japan's capital."),
    ("capital", "Kenya", "Nairobi", "The capital of Kenya is Nairobi."),
    ("capital", "Brazil", "Brasília", "Brazil's capital is Brasília, not Rio de Janeiro."),
    ("capital", "Norway", "Oslo", "Oslo is the capital of Norway."),
    ("capital", "Egypt", "Cairo", "Cairo is the capital of Egypt."),
    ("capital", "Peru", "Lima", "The capital of Peru is Lima."),
    ("capital", "Vietnam", "Hanoi", "Hanoi is the capital of Vietnam."),
    ("capital", "Turkey", "Ankara", "Turkey's capital is Ankara, although Istanbul is its largest city."),
    ("capital", "Morocco", "Rabat", "Rabat is the capital of Morocco."),
    ("capital", "New Zealand", "Wellington", "Wellington is the capital of New Zealand."),
    ("capital", "Switzerland", "Bern", "Bern is the Swiss federal city and seat of government."),
    ("capital", "Argentina", "Buenos Aires", "The capital of Argentina is Buenos Aires."),
    ("capital", "Finland", "Helsinki", "Helsinki is the capital of Finland."),
    ("author", "Pride and Prejudice", "Jane Austen", "Pride and Prejudice was written by Jane Austen in 1813."),
    ("author", "1984", "George Orwell", "George Orwell wrote 1984; it was published in 1949."),
    ("author", "One Hundred Years of Solitude", "Gabriel García Márquez",
     "It was written by the Colombian author Gabriel García Márquez."),
    ("author", "Moby-Dick", "Herman Melville", "Herman Melville wrote Moby-Dick."),
    ("author", "The Odyssey", "Homer", "The Odyssey is traditionally attributed to Homer."),
    ("author", "Frankenstein", "Mary Shelley", "Mary Shelley wrote Frankenstein, first published in 1818."),
    ("author", "The Trial", "Franz Kafka", "Franz Kafka wrote The Trial."),
    ("author", "Beloved", "Toni Morrison", "Beloved is a 1987 novel by Toni Morrison."),
    ("author", "Don Quixote", "Miguel de Cervantes", "Don Quixote was written by Miguel de Cervantes."),
    ("author", "War and Peace", "Leo Tolstoy", "Leo Tolstoy wrote War and Peace."),
    ("symbol", "gold", "Au", "The chemical symbol for gold is Au, from the Latin aurum."),
    ("symbol", "sodium", "Na", "Sodium's symbol is Na, from its Latin name natrium."),
    ("symbol", "iron", "Fe", "Iron has the symbol Fe."),
    ("symbol", "potassium", "K", "The symbol for potassium is K."),
    ("symbol", "silver", "Ag", "Silver's chemical symbol is Ag."),
    ("symbol", "lead", "Pb", "Lead is written Pb, from the Latin plumbum."),
    ("symbol", "tin", "Sn", "Tin has the chemical symbol Sn."),
    ("symbol", "mercury", "Hg", "The symbol for mercury is Hg."),
    ("symbol", "tungsten", "W", "Tungsten's symbol is W, from its German name Wolfram."),
    ("symbol", "copper", "Cu", "Copper's symbol is Cu."),
    ("invented", "the telephone", "Alexander Graham Bell",
     "Alexander Graham Bell was granted the first US patent for the telephone in 1876."),
    ("invented", "the World Wide Web", "Tim Berners-Lee", "Tim Berners-Lee invented the World Wide Web in 1989."),
    ("invented", "the printing press", "Johannes Gutenberg",
     "Johannes Gutenberg built the movable-type printing press around 1440."),
    ("invented", "dynamite", "Alfred Nobel", "Alfred Nobel invented dynamite in 1867."),
    ("invented", "the light bulb", "Thomas Edison",
     "Thomas Edison developed the first practical incandescent light bulb, building on earlier work."),
    ("invented", "the polio vaccine", "Jonas Salk", "Jonas Salk developed the first effective polio vaccine."),
    ("invented", "the periodic table", "Dmitri Mendeleev", "Dmitri Mendeleev published the periodic table in 1869."),
    ("invented", "the steam engine", "James Watt",
     "James Watt greatly improved the steam engine; Thomas Newcomen built an earlier one."),
    ("invented", "the jet engine", "Frank Whittle", "Frank Whittle patented the turbojet engine in 1930."),
    ("planet", "largest planet in the Solar System", "Jupiter", "Jupiter is the largest planet in the Solar System."),
    ("planet", "planet closest to the Sun", "Mercury", "Mercury is the planet closest to the Sun."),
    ("planet", "planet known for its rings", "Saturn", "Saturn is best known for its bright rings."),
    ("planet", "hottest planet", "Venus", "Venus is the hottest planet because of its thick CO2 atmosphere."),
    ("planet", "red planet", "Mars", "Mars is called the red planet because of iron oxide on its surface."),
    ("year", "the fall of the Berlin Wall", "1989", "The Berlin Wall fell on 9 November 1989."),
    ("year", "the first Moon landing", "1969", "Apollo 11 landed on the Moon in July 1969."),
    ("year", "the end of World War II", "1945", "World War II ended in 1945."),
    ("year", "the French Revolution", "1789", "The French Revolution began in 1789."),
    ("year", "the sinking of the Titanic", "1912", "The Titanic sank in April 1912."),
    ("year", "the founding of the United Nations", "1945", "The United Nations was founded in 1945."),
    ("year", "the first iPhone release", "2007", "Apple released the first iPhone in 2007."),
    ("unit", "the SI unit of force", "the newton", "Force is measured in newtons (N)."),
    ("unit", "the SI unit of electric resistance", "the ohm", "Electric resistance is measured in ohms (Ω)."),
    ("unit", "the SI unit of power", "the watt", "The watt (W) is the SI unit of power."),
    ("unit", "the SI unit of frequency", "the hertz", "Frequency is measured in hertz (Hz)."),
    ("unit", "the SI unit of pressure", "the pascal", "Pressure is measured in pascals (Pa)."),
    ("unit", "the SI unit of electric charge", "the coulomb", "The coulomb (C) is the SI unit of charge."),
]

# Several phrasings per relation: clean rows use one; paraphrase groups use two.
FACT_QUESTIONS = {
    "capital": ["What is the capital of {s}?", "Which city is the capital of {s}?", "Name the capital city of {s}.",
                "{s}'s capital is which city?", "What city serves as the capital of {s}?"],
    "author": ["Who wrote {s}?", "Who is the author of {s}?", "Which writer wrote the novel {s}?",
               "{s} was written by whom?", "Name the author of {s}."],
    "symbol": ["What is the chemical symbol for {s}?", "Which symbol stands for {s} on the periodic table?",
               "How is {s} written as a chemical symbol?", "Give the element symbol of {s}.",
               "What's the periodic-table symbol of {s}?"],
    "invented": ["Who invented {s}?", "Who is credited with inventing {s}?", "Which person created {s}?",
                 "Who came up with {s}?", "Name the inventor of {s}."],
    "planet": ["What is the {s}?", "Which planet is the {s}?", "Name the {s}.", "Which world is the {s}?",
               "Tell me which planet is the {s}."],
    "year": ["In what year did {s} happen?", "When did {s} take place?", "What year was {s}?",
             "Which year saw {s}?", "Give the year of {s}."],
    "unit": ["What is {s}?", "Which unit is {s}?", "Name {s}.", "What do we call {s}?", "Tell me {s}."],
}

# Prose topics: prompt subject, paragraphs (lists of sentences, in order) and a one-line summary.
TOPICS = {
    "how sourdough bread rises": (
        [["Sourdough rises because of a starter, a mix of flour and water colonised by wild yeast and lactic "
          "acid bacteria.", "The yeast eats sugars in the flour and releases carbon dioxide.",
          "That gas is trapped by the gluten network, so the dough puffs up."],
         ["The bacteria matter too.", "They produce lactic and acetic acids, which give the bread its tang.",
          "The acids also strengthen the gluten and help the loaf keep longer."],
         ["Because wild yeast is slower than commercial yeast, a sourdough rise takes hours, not minutes.",
          "Warmth speeds it up; a cool kitchen slows it down and deepens the flavour.",
          "Bakers judge readiness by the dough's volume and feel rather than by the clock."]],
        "Wild yeast in the starter makes gas that gluten traps, while bacteria add flavour and strength."),
    "why the sky is blue": (
        [["Sunlight contains every colour, and air molecules scatter short wavelengths much more than long ones.",
          "This effect is called Rayleigh scattering.", "Blue light is scattered about five times more than red."],
         ["When you look at any part of the sky away from the Sun, you see that scattered blue light.",
          "Violet is scattered even more, but the Sun emits less of it and our eyes are less sensitive to it."],
         ["At sunset the light crosses much more air before it reaches you.",
          "Most of the blue is scattered out along the way, which leaves the reds and oranges."]],
        "Air scatters short blue wavelengths far more than red ones, so scattered skylight looks blue."),
    "how compound interest works": (
        [["Compound interest means you earn interest on your interest, not only on the money you put in.",
          "Each period, the interest is added to the balance, and the next period's interest is computed "
          "on that larger balance."],
         ["For example, 1,000 dollars at 5% a year becomes 1,050 after one year and 1,102.50 after two.",
          "After 20 years it is about 2,653 dollars, even though you never added anything."],
         ["The earlier you start, the more periods the growth has to compound.",
          "That is why small, regular savings started young often beat larger savings started late."]],
        "Interest is added to the balance each period, so later interest grows on earlier interest."),
    "how to choose a strong password": (
        [["A strong password is long, unique and hard to guess.",
          "Length matters more than odd symbols: four random words beat a short jumble of characters."],
         ["Never reuse a password across sites.", "When one site is breached, attackers try the same "
          "email and password everywhere else.", "A password manager makes unique passwords practical."],
         ["Turn on two-factor authentication wherever you can.",
          "Even if a password leaks, the second factor stops most account takeovers."]],
        "Use long, unique passwords kept in a password manager, plus two-factor authentication."),
    "how composting works": (
        [["Composting is controlled decay.", "Bacteria and fungi break kitchen and garden waste down into humus.",
          "They need air, moisture and a balance of carbon-rich and nitrogen-rich material."],
         ["Browns such as dry leaves, cardboard and straw supply carbon.",
          "Greens such as vegetable peels, coffee grounds and grass clippings supply nitrogen.",
          "A rough mix of two or three parts brown to one part green works well."],
         ["Turning the pile every week or two lets air in and speeds things up.",
          "A healthy heap feels warm in the middle and smells earthy, not sour."]],
        "Microbes turn a moist, aerated mix of carbon and nitrogen waste into humus."),
    "how vaccines train the immune system": (
        [["A vaccine shows the immune system a harmless version or piece of a germ.",
          "It might be an inactivated virus, a protein from its surface, or mRNA instructions to make that "
          "protein."],
         ["The body responds as it would to an infection, but without the disease.",
          "B cells make antibodies and T cells learn to recognise infected cells.",
          "Some of these cells become long-lived memory cells."],
         ["If the real germ arrives later, the memory cells react within days instead of weeks.",
          "That faster response is what prevents or softens the illness."]],
        "Vaccines show the body a harmless piece of a germ so memory cells respond fast to the real one."),
    "the difference between weather and climate": (
        [["Weather is what the atmosphere does over hours and days: today's rain, tomorrow's wind.",
          "Climate is the pattern of weather over decades in a region."],
         ["A cold week in July says little about the climate.",
          "A trend of warmer summers over thirty years does.",
          "Scientists usually average at least thirty years of observations to describe a climate."],
         ["A common way to put it: climate is what you expect, weather is what you get."]],
        "Weather is short-term atmospheric conditions; climate is their long-term average pattern."),
    "how git branches work": (
        [["In Git a branch is just a movable pointer to a commit.",
          "Creating one is cheap because Git does not copy any files."],
         ["When you commit on a branch, the pointer moves forward to the new commit.",
          "Other branches keep pointing where they were, so work on each line stays separate.",
          "HEAD records which branch you currently have checked out."],
         ["Merging combines the histories of two branches.",
          "If one branch is simply ahead of the other, Git fast-forwards the pointer; otherwise it creates a "
          "merge commit with two parents."]],
        "A Git branch is a cheap movable pointer to a commit that advances as you commit."),
    "how to start running safely": (
        [["Start with run-walk intervals, for example one minute of easy running and two minutes of walking.",
          "Repeat that eight times, three days a week."],
         ["Increase the running part gradually, by about ten percent a week.",
          "Your heart and lungs adapt faster than your tendons and bones, which is why beginners who do too "
          "much too soon get injured."],
         ["Run at a pace where you could still hold a conversation.",
          "Rest days are part of training, not a break from it.",
          "Comfortable shoes that fit well matter more than expensive ones."]],
        "Build up gradually from run-walk intervals at a conversational pace, with rest days."),
    "why we have leap years": (
        [["The Earth takes about 365.2422 days to go around the Sun, not exactly 365.",
          "Without a correction, the calendar would drift by almost a day every four years."],
         ["Adding 29 February every fourth year fixes most of that drift.",
          "But four quarter days is slightly too much, so century years are skipped unless divisible by 400.",
          "That is why 2000 was a leap year and 1900 was not."],
         ["With these rules the Gregorian calendar stays within a day of the seasons for thousands of years."]],
        "Leap days keep the 365-day calendar aligned with the 365.2422-day solar year."),
    "how a heat pump heats a house": (
        [["A heat pump moves heat rather than making it.",
          "It uses a refrigerant that evaporates at low temperature, absorbing heat even from cold outdoor air."],
         ["A compressor raises the refrigerant's pressure and temperature.",
          "Indoors, the hot refrigerant condenses and releases its heat into the house.",
          "The cycle then repeats."],
         ["Because it moves heat instead of burning fuel, a heat pump can deliver three or four units of heat "
          "for each unit of electricity.", "Its efficiency drops as the outdoor temperature falls."]],
        "A heat pump uses a refrigerant cycle to move outdoor heat inside, giving several units per unit of power."),
    "how to write a good bug report": (
        [["A good bug report lets someone else reproduce the problem without asking you anything.",
          "Start with a one-line summary of what is wrong."],
         ["List the exact steps to reproduce it, what you expected and what happened instead.",
          "Include the version, operating system and any error message, copied as text rather than a screenshot."],
         ["Keep one bug per report.", "If you found a workaround, say so; it often hints at the cause."]],
        "Give a summary, exact reproduction steps, expected versus actual results and your environment."),
}
PROSE_PROMPTS = ["Explain {t}.", "Can you explain {t}?", "Write a short explanation of {t}.",
                 "I've always wondered about {t}. Could you explain it in a few paragraphs?",
                 "Give me an overview of {t}.", "Describe {t} for a curious teenager."]

LIST_TOPICS = {
    "tips for saving energy at home": ["Switch to LED bulbs", "Lower the thermostat by one degree",
                                       "Seal draughts around doors and windows", "Wash clothes at 30°C",
                                       "Unplug chargers you are not using", "Use a lid when boiling water",
                                       "Dry laundry outside when you can"],
    "things to pack for a day hike": ["Water, at least two litres", "A map or offline map app", "Snacks",
                                      "A rain jacket", "Sunscreen and a hat", "A small first-aid kit",
                                      "A charged phone", "A headlamp"],
    "ways to improve sleep": ["Keep a regular wake-up time", "Avoid caffeine after lunch",
                              "Keep the bedroom cool and dark", "Put screens away an hour before bed",
                              "Get daylight in the morning", "Limit alcohol in the evening"],
    "steps to make a cup of pour-over coffee": ["Heat water to about 94°C", "Rinse the paper filter",
                                                "Grind 15 g of coffee to medium-fine",
                                                "Bloom with 30 g of water for 30 seconds",
                                                "Pour the rest slowly in circles up to 250 g",
                                                "Let it drain and serve"],
    "common causes of a slow laptop": ["Too many programs starting at boot", "A nearly full disk",
                                       "Not enough RAM for your workload", "Outdated drivers",
                                       "Malware or adware", "Overheating from dusty vents",
                                       "Browser tabs left open for days"],
    "questions to ask in a job interview": ["What does a typical week look like in this role?",
                                            "How will success be measured in the first six months?",
                                            "What is the team working on right now?",
                                            "How do you support professional development?",
                                            "What made the last person in this role successful?"],
    "ways to reduce food waste": ["Plan meals before shopping", "Store herbs in a glass of water",
                                  "Freeze bread you won't eat in time", "Use older food first",
                                  "Turn vegetable scraps into stock", "Learn what best-before dates mean"],
    "signs a houseplant is overwatered": ["Yellowing lower leaves", "Soil that stays wet for days",
                                          "A musty smell", "Soft, brown roots", "Fungus gnats",
                                          "Leaves that wilt even though the soil is wet"],
}
LIST_PROMPTS = ["List some {t}.", "What are some {t}?", "Give me a few {t}.", "Can you suggest {t}?",
                "Bullet points please: {t}."]

TRANSLATIONS = [  # English, French, Spanish, German
    ("Where is the train station?", "Où est la gare ?", "¿Dónde está la estación de tren?", "Wo ist der Bahnhof?"),
    ("I would like a coffee, please.", "Je voudrais un café, s'il vous plaît.", "Quisiera un café, por favor.",
     "Ich hätte gern einen Kaffee, bitte."),
    ("The meeting has been moved to Thursday.", "La réunion a été déplacée à jeudi.",
     "La reunión se ha cambiado al jueves.", "Das Meeting wurde auf Donnerstag verschoben."),
    ("Could you send me the invoice again?", "Pourriez-vous m'envoyer à nouveau la facture ?",
     "¿Podría enviarme la factura otra vez?", "Könnten Sie mir die Rechnung noch einmal schicken?"),
    ("My order arrived damaged.", "Ma commande est arrivée endommagée.", "Mi pedido llegó dañado.",
     "Meine Bestellung ist beschädigt angekommen."),
    ("We are closed on public holidays.", "Nous sommes fermés les jours fériés.",
     "Estamos cerrados los días festivos.", "An Feiertagen haben wir geschlossen."),
    ("How much does the ticket cost?", "Combien coûte le billet ?", "¿Cuánto cuesta el billete?",
     "Wie viel kostet die Fahrkarte?"),
    ("Thank you for your patience.", "Merci de votre patience.", "Gracias por su paciencia.",
     "Vielen Dank für Ihre Geduld."),
    ("The password must contain at least twelve characters.",
     "Le mot de passe doit contenir au moins douze caractères.",
     "La contraseña debe tener al menos doce caracteres.", "Das Passwort muss mindestens zwölf Zeichen enthalten."),
    ("Please restart the router and try again.", "Veuillez redémarrer le routeur et réessayer.",
     "Reinicie el router e inténtelo de nuevo.", "Bitte starten Sie den Router neu und versuchen Sie es erneut."),
    ("The museum opens at nine in the morning.", "Le musée ouvre à neuf heures du matin.",
     "El museo abre a las nueve de la mañana.", "Das Museum öffnet um neun Uhr morgens."),
    ("It is going to rain tomorrow afternoon.", "Il va pleuvoir demain après-midi.",
     "Va a llover mañana por la tarde.", "Morgen Nachmittag wird es regnen."),
    ("Your refund will be processed within five business days.",
     "Votre remboursement sera traité sous cinq jours ouvrés.",
     "Su reembolso se procesará en un plazo de cinco días hábiles.",
     "Ihre Rückerstattung wird innerhalb von fünf Werktagen bearbeitet."),
    ("I can't find my keys anywhere.", "Je ne trouve mes clés nulle part.", "No encuentro mis llaves por ningún lado.",
     "Ich finde meine Schlüssel nirgends."),
    ("The library is on the second floor.", "La bibliothèque est au deuxième étage.",
     "La biblioteca está en el segundo piso.", "Die Bibliothek ist im zweiten Stock."),
    ("Do you have this jacket in a larger size?", "Avez-vous cette veste dans une taille plus grande ?",
     "¿Tiene esta chaqueta en una talla más grande?", "Haben Sie diese Jacke in einer größeren Größe?"),
]
LANGUAGES = ["French", "Spanish", "German"]

# Whole conversations in one non-English language (a multilingual dataset's clean rows).
FOREIGN_QA = [
    ("¿Cuál es la diferencia entre el tiempo y el clima?",
     "El tiempo describe lo que pasa en la atmósfera durante horas o días. El clima es el promedio de esas "
     "condiciones durante décadas en una región."),
    ("¿Cómo puedo ahorrar agua en casa?",
     "Cierra el grifo mientras te cepillas los dientes, repara las fugas y usa la lavadora solo con carga "
     "completa. Una ducha corta gasta mucha menos agua que un baño."),
    ("¿Por qué es importante dormir bien?",
     "Durante el sueño el cuerpo repara tejidos y el cerebro consolida la memoria. Dormir poco afecta a la "
     "concentración, al estado de ánimo y a las defensas."),
    ("Wie funktioniert eine Wärmepumpe?",
     "Eine Wärmepumpe entzieht der Außenluft oder dem Boden Wärme und hebt sie mit einem Kompressor auf ein "
     "höheres Temperaturniveau. So heizt sie mit wenig Strom das Haus."),
    ("Was sollte ich bei einer Wanderung mitnehmen?",
     "Nimm genug Wasser, eine Regenjacke, etwas zu essen und eine Karte mit. Ein kleines Erste-Hilfe-Set und "
     "ein geladenes Handy sind auch sinnvoll."),
    ("Warum ist der Himmel blau?",
     "Die Luft streut kurzwelliges blaues Licht viel stärker als rotes. Deshalb sehen wir das gestreute blaue "
     "Licht aus allen Richtungen des Himmels."),
    ("Comment fonctionne un vaccin ?",
     "Un vaccin présente au système immunitaire une partie inoffensive d'un microbe. Le corps fabrique des "
     "anticorps et garde des cellules mémoire, qui réagissent vite si le vrai microbe arrive."),
    ("Quels sont les avantages du vélo en ville ?",
     "Le vélo est rapide sur les courtes distances, il ne pollue pas et il permet de faire du sport sans y "
     "penser. En plus, on trouve toujours une place pour se garer."),
    ("Pourquoi les feuilles changent-elles de couleur en automne ?",
     "Quand les jours raccourcissent, l'arbre arrête de produire de la chlorophylle. Les pigments jaunes et "
     "orange, déjà présents, deviennent alors visibles."),
    ("Qual é a melhor forma de aprender uma língua nova?",
     "Pratique um pouco todos os dias, ouça conteúdos de que você gosta e converse com falantes nativos "
     "sempre que puder. Errar faz parte do processo."),
    ("Come si prepara un buon caffè con la moka?",
     "Riempi la caldaia d'acqua fino alla valvola, metti il caffè nel filtro senza pressarlo e scalda a "
     "fuoco basso. Togli la moka dal fuoco appena inizia a gorgogliare."),
    ("Hoe kan ik beter slapen?",
     "Ga elke dag op hetzelfde tijdstip naar bed, vermijd schermen vlak voor het slapen en houd de slaapkamer "
     "koel en donker."),
]

# Off-language answers for the wrong-language junk: generic helpful-sounding sentences.
OTHER_LANGUAGE = {
    "German": ["Das hängt von mehreren Faktoren ab, aber im Allgemeinen ist es besser, zuerst die Einstellungen "
               "zu überprüfen.", "Vielen Dank für Ihre Frage. Die Antwort finden Sie in der Dokumentation "
               "unter dem Abschnitt Installation.", "Ja, das ist möglich, wenn Sie die Schritte in der richtigen "
               "Reihenfolge ausführen und danach neu starten."],
    "French": ["Cela dépend de plusieurs facteurs, mais en général il vaut mieux commencer par vérifier les "
               "paramètres.", "Merci pour votre question. Vous trouverez la réponse dans la documentation, "
               "dans la section consacrée à l'installation.", "Oui, c'est possible si vous suivez les étapes "
               "dans le bon ordre et que vous redémarrez ensuite."],
    "Spanish": ["Depende de varios factores, pero en general es mejor empezar por revisar la configuración.",
                "Gracias por su pregunta. Encontrará la respuesta en la documentación, en la sección de "
                "instalación.", "Sí, es posible si sigue los pasos en el orden correcto y luego reinicia el "
                "equipo."],
    "Italian": ["Dipende da diversi fattori, ma in generale è meglio cominciare controllando le impostazioni.",
                "Grazie per la domanda. Trova la risposta nella documentazione, nella sezione dedicata "
                "all'installazione."],
    "Portuguese": ["Depende de vários fatores, mas em geral é melhor começar verificando as configurações.",
                   "Obrigado pela pergunta. Você encontra a resposta na documentação, na seção de instalação."],
    "Russian": ["Это зависит от нескольких факторов, но обычно лучше сначала проверить настройки.",
                "Спасибо за вопрос. Ответ можно найти в документации, в разделе об установке."],
    "Chinese": ["这取决于几个因素，但一般来说最好先检查设置。", "谢谢你的问题。你可以在文档的安装部分找到答案。"],
    "Japanese": ["いくつかの要因によりますが、一般的にはまず設定を確認するのがよいでしょう。",
                 "ご質問ありがとうございます。答えはドキュメントのインストールの章にあります。"],
}

PRODUCTS = ["laptop", "headphones", "smartwatch", "router", "phone", "tablet", "camera", "printer",
            "coffee machine", "e-reader", "vacuum cleaner", "monitor"]
INTENT_MESSAGES = {
    "refund": ["I want my money back for the {p}, it broke after {n} days.",
               "Please refund my order, the {p} is not what I ordered.",
               "The {p} arrived with a cracked screen. I'd like a refund rather than a replacement."],
    "technical_issue": ["My {p} won't turn on anymore, even after charging it overnight.",
                        "The {p} keeps disconnecting from wifi every {n} minutes.",
                        "Since the last update my {p} freezes whenever I open the settings."],
    "order_status": ["Where is my {p}? I ordered it {n} days ago and tracking hasn't changed.",
                     "Has my {p} shipped yet? Order placed last week.",
                     "Tracking says the {p} was delivered but nothing is at my door."],
    "cancel_subscription": ["How do I cancel the protection plan for my {p}?",
                            "Please stop my monthly subscription, I returned the {p}.",
                            "I no longer use the {p}, cancel the cloud storage plan please."],
    "change_address": ["I moved, can you send the {p} to my new address instead?",
                       "Wrong delivery address on my {p} order, please update it before it ships."],
}
URGENCY_HINTS = {"high": ["This is urgent!", "I need it today.", "Please hurry, it's for work tomorrow."],
                 "medium": ["", "Thanks.", "Let me know."], "low": ["No rush.", "Whenever you can.", ""]}
NAMES = ["Ana Costa", "Ben Okafor", "Chloe Martin", "Dev Patel", "Emma Larsen", "Farid Haddad", "Grace Kim",
         "Hugo Silva", "Ines Moreau", "Jon Berg", "Kai Tanaka", "Lena Fischer", "Malik Johnson", "Nora Ali"]
CITIES = ["Lisbon", "Lagos", "Lyon", "Mumbai", "Oslo", "Seoul", "Porto", "Hamburg", "Austin", "Nairobi", "Osaka"]

REVIEWS = {
    "positive": ["Arrived early and works perfectly.", "Great sound for the price, very happy.",
                 "Setup took two minutes and the battery lasts all week.", "Exactly as described, would buy again.",
                 "The staff were friendly and the room was spotless."],
    "negative": ["Stopped working after a week.", "The strap broke on the first day.",
                 "Customer service never answered my emails.", "Way too loud and the app keeps crashing.",
                 "Cold food and we waited an hour."],
    "neutral": ["It does the job, nothing special.", "Average quality, average price.",
                "Delivery was on time; I haven't used it much yet.", "Fine for occasional use."],
}

# Junk fragments.
REFUSAL_OPENERS = ["I'm sorry, but", "I apologize, but", "Unfortunately,", "As an AI language model,",
                   "As an AI assistant,", "I'm afraid", "Sorry,", "As a large language model,", ""]
REFUSAL_CORES = ["I can't help with that", "I cannot provide that information", "I am unable to assist with "
                 "this request", "I'm not able to answer that question", "I can't comply with this request",
                 "I must decline to answer this", "I won't be able to do that",
                 "I don't have the ability to browse the internet", "I do not have personal opinions",
                 "I'm not able to provide legal or medical advice", "I cannot fulfill this request",
                 "I do not have access to real-time information", "that is not something I can help with"]
REFUSAL_TAILS = [".", ". Is there anything else I can help you with?", ", as it goes against my guidelines.",
                 ". Please consult a qualified professional.", ". My knowledge cutoff prevents me from answering.",
                 "!", ". I hope you understand."]
PLACEHOLDERS = ["TODO", "TBD", "[insert answer here]", "<placeholder>", "{{answer}}", "{{ response }}",
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "Your answer here", "N/A", "n/a",
                "null", "undefined", "-", "?", "...", "[ANSWER]", "xxx", "PLACEHOLDER", "Answer: TODO",
                "FIXME: write the response", "TBD - to be completed", "[Insert response]", "<answer>",
                "Lorem ipsum dolor sit amet.", "ANSWER GOES HERE", "[your text here]", "insert text here"]
MARKUP_ONLY = ["<div><br><br>&nbsp;</div>", "<p></p><p>&nbsp;</p>", "<br/><br/>", "&nbsp;&nbsp;&nbsp;",
               "<div class=\"content\"></div>", "<table><tr><td></td></tr></table>", "<span></span><br>",
               "<p><br></p>", "<ul><li></li></ul>", "&nbsp;<br>&nbsp;", "<div><div><p>&nbsp;</p></div></div>",
               "<img src=\"spacer.gif\">", "<p style=\"margin:0\">&nbsp;</p>", "&lt;br&gt;&lt;br&gt;",
               "<font size=\"2\"></font>", "<a href=\"#\"></a>"]
EMPTY_AFTER_STRIP = ["", " ", "\n\n", "\t", "\u200b", "\u200b\u200b ", "\ufeff", "** **", "```\n```", '""',
                     "''", "---", "* * *", "#", "   \n\u00a0 ", "__", "()", "\u3000", "``", "\u200b\n\u200b"]
# How real replies end (helpdesk exports, forum answers, emails pasted into a CSV): sign-offs, P.S. lines and
# closing wishes, often without a full stop. {name}, {first}, {city} and {product} are filled in.
SIGN_OFFS = ['P.S. "thanks", bye', "Thanks, bye", "Cheers", "Best regards,\n{name}", "Kind regards, the support team",
             "Have a nice day", "Talk soon", "Bye for now", "Hope this helps", "Hope that helps!",
             "Let me know if you have any other questions", "Thanks again for your patience", "Best, {first}",
             "Take care", "Many thanks, {name}", "Enjoy your new {product}", "Good luck with the move",
             "Warm wishes from the whole team", "Sincerely, {name}", "- {first}", "Regards\nThe {city} store team",
             "PS: keep the receipt", "Happy coding", "Thank you for shopping with us", "Have a great weekend",
             "All the best", "Speak soon, {first}", "Cheers,\n{first} from support", "Thanks for reaching out",
             "Stay safe", "With kind regards", "Greetings from {city}", "P.S. We also ship to {city}",
             "Any other questions, just reply to this email", "See you next time", "Thanks a lot 🙂", "Have fun",
             "Enjoy", "Good luck", "Until next time", "Thank you, {first}", "Yours truly,\n{name}",
             "P.S. the {product} manual is online too", "Regards, {first} ({city} office)", "Thanks in advance"]
